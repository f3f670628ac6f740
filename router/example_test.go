package router_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

// A service with one handler that fails twice, then succeeds. The retry
// middleware schedules each retry in Redis with a growing delay; the handler
// returns at once and other messages keep flowing meanwhile.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	topic := "example-orders-" + watermill.NewShortUUID()
	defer cleanup(rdb, topic, "send-invoice")

	r, err := router.New(router.Config{
		Client: rdb,
		Retry: middleware.RetryConfig{
			MaxRetries:      3,
			InitialInterval: 20 * time.Millisecond,
			OnRetry: func(e middleware.RetryEvent) {
				fmt.Printf("retry %d of %s in %s: %v\n", e.Attempt, e.Message.UUID, e.Delay, e.Err)
			},
		},
	}, watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	done := make(chan struct{})
	var attempts atomic.Int32
	_, err = r.AddConsumerHandler("send-invoice", topic, func(msg *message.Message) error {
		if attempts.Add(1) <= 2 {
			return errors.New("invoice service unavailable")
		}
		fmt.Printf("invoice sent for %s\n", msg.UUID)
		close(done)
		return nil
	})
	if err != nil {
		panic(err)
	}
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic, message.NewMessage("order-1", []byte(`{"total": 42}`))); err != nil {
		panic(err)
	}
	<-done

	// Output:
	// retry 1 of order-1 in 20ms: invoice service unavailable
	// retry 2 of order-1 in 40ms: invoice service unavailable
	// invoice sent for order-1
}

// Each handler reads in its own consumer group, so two handlers on one topic
// each get every message, and one's retries never reach the other.
// WithRetry gives a handler its own retry policy.
func ExampleRouter_AddConsumerHandler() {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	defer rdb.Close()
	topic := "example-payments-" + watermill.NewShortUUID()
	defer cleanup(rdb, topic, "audit", "fraud-check")

	poisoned := make(chan string)
	r, err := router.New(router.Config{Client: rdb}, nil)
	if err != nil {
		panic(err)
	}
	defer r.Close()

	audited := make(chan string)
	_, err = r.AddConsumerHandler("audit", topic, func(msg *message.Message) error {
		audited <- msg.UUID
		return nil
	})
	if err != nil {
		panic(err)
	}
	_, err = r.AddConsumerHandler("fraud-check", topic, func(msg *message.Message) error {
		return middleware.Permanent(errors.New("card number is malformed"))
	}, router.WithRetry(middleware.RetryConfig{
		OnPoison: func(e middleware.PoisonEvent) { poisoned <- e.Message.UUID + ": " + e.Reason },
	}))
	if err != nil {
		panic(err)
	}
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic, message.NewMessage("payment-7", nil)); err != nil {
		panic(err)
	}
	fmt.Println("audited:", <-audited)
	fmt.Println("poisoned:", <-poisoned)

	// Output:
	// audited: payment-7
	// poisoned: payment-7: permanent error: permanent: card number is malformed
}

// cleanup deletes the keys an example made.
func cleanup(rdb redis.UniversalClient, topic string, groups ...string) {
	keys := redrive.KeysFor(topic)
	del := []string{keys.Stream, keys.Delayed, keys.Poison}
	for _, g := range groups {
		del = append(del, keys.GroupRetry(g), keys.GroupRetryDelayed(g))
	}
	for _, k := range del {
		rdb.Del(context.Background(), k)
	}
}

// redisAddr is the Redis the examples run against: $REDIS_ADDR, or
// 127.0.0.1:6379.
func redisAddr() string {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr
	}
	return "127.0.0.1:6379"
}
