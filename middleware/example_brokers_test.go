package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/middleware"
)

// exampleRedis connects to $REDIS_ADDR, default 127.0.0.1:6379.
func exampleRedis() *redis.Client {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	return redis.NewClient(&redis.Options{Addr: addr})
}

// On a broker without delays (here GoChannel; NATS, RabbitMQ or Kafka alike),
// retries wait in Redis and come back through the broker's own publisher, to
// the failing handler's retry topic, which AddRetryHandler reads.
func ExampleNewDurableRetries() {
	rdb := exampleRedis()
	defer rdb.Close()
	broker := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer broker.Close()

	durable, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{
		Client: rdb, Publisher: broker, Name: "example-" + watermill.NewShortUUID(),
	}, nil)
	if err != nil {
		panic(err)
	}
	defer func() { _ = durable.Close(); rdb.Del(context.Background(), durable.Key()) }()
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher:       broker,
		PoisonTopic:     "orders_poison",
		InitialInterval: 50 * time.Millisecond,
		Delay:           middleware.DelayDurable,
		Durable:         durable,
	}, nil)
	if err != nil {
		panic(err)
	}

	router, _ := message.NewRouter(message.RouterConfig{}, nil)
	router.AddMiddleware(retry.Middleware)
	done := make(chan struct{})
	handler := func(msg *message.Message) error {
		st, _ := middleware.ReadRetryState(msg.Metadata)
		if st.Attempts == 0 {
			fmt.Println("first attempt fails")
			return errors.New("mail server unavailable")
		}
		fmt.Printf("retry on %s succeeds (first published as %s)\n",
			message.SubscribeTopicFromCtx(msg.Context()), msg.Metadata.Get(middleware.MetadataOriginalUUID))
		close(done)
		return nil
	}
	router.AddConsumerHandler("send-email", "orders", broker, handler)
	middleware.AddRetryHandler(router, "send-email", "orders", broker, handler)
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()

	_ = broker.Publish("orders", message.NewMessage("order-1", nil))
	<-done
	_ = router.Close()

	// Output:
	// first attempt fails
	// retry on orders_retry_send-email succeeds (first published as order-1)
}

// A copy of a message handled within the window is dropped, by any consumer
// of the group; a failed message's retries go through.
func ExampleNewDeduplicator() {
	rdb := exampleRedis()
	defer rdb.Close()
	prefix := "example-dedup-" + watermill.NewShortUUID() + ":"
	dedup, err := middleware.NewDeduplicator(middleware.DeduplicatorConfig{
		Client: rdb, Window: time.Minute, Prefix: prefix,
	}, nil)
	if err != nil {
		panic(err)
	}
	handler := dedup.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		fmt.Println("handling", msg.UUID)
		return nil, nil
	})
	for range 2 {
		// Outside a router there is no handler name; in one, keys are per
		// consumer group (or handler).
		_, _ = handler(message.NewMessage("order-1", nil))
	}
	rdb.Del(context.Background(), prefix+":order-1")

	// Output:
	// handling order-1
}
