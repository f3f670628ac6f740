// Command quickstart shows redrive's retries: it publishes one order to a
// handler that fails twice, then succeeds, and prints each step — the
// failures, the retries scheduled in Redis with their delays, and the final
// success.
//
//	go -C examples run ./quickstart
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/examples/internal/timeline"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

func main() {
	rdb, topic, cleanup := exampleredis.Setup("orders", "send-invoice")
	defer cleanup()

	step := timeline.Start().Step

	// The service: one handler, retried up to 3 times, 200 ms then 400 ms
	// apart. Each retry waits in Redis, not in the handler, so other messages
	// keep flowing meanwhile.
	r, err := router.New(router.Config{
		Client: rdb,
		Retry: middleware.RetryConfig{
			MaxRetries:      3,
			InitialInterval: 200 * time.Millisecond,
			OnRetry: func(e middleware.RetryEvent) {
				step("retry %d of %s scheduled in Redis, due in %s", e.Attempt, e.Message.UUID, e.Delay)
			},
		},
	}, nil)
	if err != nil {
		fail(err)
	}
	done := make(chan struct{})
	var attempts atomic.Int32
	_, err = r.AddConsumerHandler("send-invoice", topic, func(msg *message.Message) error {
		n := attempts.Add(1)
		if n <= 2 {
			err := errors.New("invoice service unavailable")
			step("send-invoice: attempt %d for %s failed: %v", n, msg.UUID, err)
			return err
		}
		st, _ := middleware.ReadRetryState(msg.Metadata)
		step("send-invoice: attempt %d for %s succeeded (its metadata records %d failures)", n, msg.UUID, st.Attempts)
		close(done)
		return nil
	})
	if err != nil {
		fail(err)
	}
	go func() {
		if err := r.Run(context.Background()); err != nil {
			fail(err)
		}
	}()
	<-r.Running()
	keys := redrive.KeysFor(topic)
	fmt.Printf("Handler send-invoice reads topic %s in consumer group send-invoice.\n", topic)
	fmt.Printf("Its retries wait in the sorted set %s,\nthen enter the stream %s, which only its group reads.\n",
		keys.GroupRetryDelayed("send-invoice"), keys.GroupRetry("send-invoice"))

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer pub.Close()
	step("publishing order-1001")
	if err := pub.Publish(topic, message.NewMessage("order-1001", []byte(`{"total": 42}`))); err != nil {
		fail(err)
	}

	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fail(errors.New("order-1001 was not handled within 10 s"))
	}
	if err := r.Close(); err != nil {
		fail(err)
	}
	fmt.Println("Done: order-1001 handled after 2 retries; router closed.")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "quickstart:", err)
	os.Exit(1)
}
