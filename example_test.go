package redrive_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// exampleClient connects to the Redis at $REDIS_ADDR, or 127.0.0.1:6379.
func exampleClient() *redis.Client {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	return redis.NewClient(&redis.Options{Addr: addr})
}

// exampleCleanup deletes the keys an example created for topic and group.
func exampleCleanup(client redis.UniversalClient, topic, group string) {
	keys := redrive.KeysFor(topic)
	client.Del(context.Background(), keys.Stream, keys.Delayed, keys.Poison,
		keys.GroupRetry(group), keys.GroupRetryDelayed(group))
}

func ExampleNewPublisher() {
	client := exampleClient()
	defer client.Close() // the publisher never closes the client it was given

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	defer pub.Close()

	topic := "example-orders-" + watermill.NewShortUUID()
	defer exampleCleanup(client, topic, "")

	// All messages of one Publish call go to Redis in one round trip, in
	// order.
	var msgs []*message.Message
	for i := 1; i <= 3; i++ {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"order":%d}`, i)))
		msg.Metadata.Set("kind", "order_placed")
		msgs = append(msgs, msg)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		panic(err)
	}

	// The topic is a plain Redis stream, in watermill-redisstream's format.
	entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		fmt.Println(e.Values["payload"])
	}
	// Output:
	// {"order":1}
	// {"order":2}
	// {"order":3}
}

func ExampleNewSubscriber() {
	client := exampleClient()
	defer client.Close() // the subscriber never closes the client it was given

	topic := "example-orders-" + watermill.NewShortUUID()
	const group = "billing"
	defer exampleCleanup(client, topic, group)

	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{
		Client: client,
		// Every subscriber of the group shares the work; a message leaves the
		// group's pending list only when acked.
		ConsumerGroup: group,
	}, watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	messages, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		panic(err)
	}

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":42}`))
	msg.Metadata.Set("kind", "order_placed")
	if err := pub.Publish(topic, msg); err != nil {
		panic(err)
	}

	select {
	case received := <-messages:
		fmt.Printf("%s %s\n", received.Metadata.Get("kind"), received.Payload)
		received.Ack()
	case <-time.After(10 * time.Second):
		fmt.Println("no message")
	}
	// Output: order_placed {"order":42}
}
