// Command other-brokers shows redrive's retry middleware on a broker other
// than redrive: Watermill's GoChannel, which has no delays of its own. Two
// handlers read one topic and each fails once:
//
//   - reserve-stock retries in process (the default on such brokers): the
//     handler waits its backoff and runs again, and nothing leaves the
//     process;
//   - send-email retries durably: the retry waits in a Redis sorted set and
//     is published back through the GoChannel, to send-email's own retry
//     topic, when due.
//
// Each retry reaches only the handler that failed.
//
//	go -C examples run ./other-brokers
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis. The same setup works with NATS
// JetStream, RabbitMQ or Kafka publishers and subscribers (tests/brokers runs
// it on each); see the README's broker table.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/examples/internal/timeline"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

func main() {
	rdb, closeRedis := exampleredis.Connect()
	defer closeRedis()
	topic := exampleredis.Topic("orders")

	step := timeline.Start().Step

	broker := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer broker.Close()

	// Durable retries: held in Redis, published back through the broker.
	durable, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{
		Client: rdb, Publisher: broker, Name: exampleredis.Topic("example"),
	}, nil)
	if err != nil {
		fail(err)
	}
	defer func() {
		_ = durable.Close()
		_ = rdb.Del(context.Background(), durable.Key()).Err()
	}()

	r, err := router.New(router.Config{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	retried := map[string]string{}
	retry := func(delay middleware.DelayMode, durable *middleware.DurableRetries) router.HandlerOption {
		return router.WithRetry(middleware.RetryConfig{
			Publisher:       broker, // poisoned messages stay in this broker
			PoisonTopic:     topic + "_poison",
			MaxRetries:      3,
			InitialInterval: 200 * time.Millisecond,
			Delay:           delay,
			Durable:         durable,
			OnRetry: func(e middleware.RetryEvent) {
				mu.Lock()
				retried[e.Handler] = map[bool]string{true: "in process", false: "durably in Redis"}[e.InProcess]
				mu.Unlock()
				if e.InProcess {
					step("%s: retry %d of %s waits %s in process", e.Handler, e.Attempt, e.Message.UUID, e.Delay)
				} else {
					step("%s: retry %d of %s held in Redis (%s), due in %s", e.Handler, e.Attempt, e.Message.UUID, durable.Key(), e.Delay)
				}
			},
		})
	}

	var wg sync.WaitGroup
	wg.Add(2)
	failOnce := func(name string) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			st, _ := middleware.ReadRetryState(msg.Metadata)
			if st.Attempts == 0 {
				step("%s: %s failed: downstream unavailable", name, msg.Payload)
				return errors.New("downstream unavailable")
			}
			step("%s: %s handled (after %d failure)", name, msg.Payload, st.Attempts)
			wg.Done()
			return nil
		}
	}
	if _, err := r.AddOtherBrokerHandler("reserve-stock", topic, broker, failOnce("reserve-stock"),
		retry(middleware.DelayInProcess, nil)); err != nil {
		fail(err)
	}
	if _, err := r.AddOtherBrokerHandler("send-email", topic, broker, failOnce("send-email"),
		retry(middleware.DelayDurable, durable)); err != nil {
		fail(err)
	}
	go func() {
		if err := r.Run(context.Background()); err != nil {
			fail(err)
		}
	}()
	<-r.Running()
	fmt.Printf("send-email's retries come back on topic %s, which only it reads.\n", middleware.RetryTopic(topic, "send-email"))

	step("publishing order-7")
	if err := broker.Publish(topic, message.NewMessage("order-7", []byte("order-7"))); err != nil {
		fail(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fail(errors.New("order-7 was not handled by both handlers within 10 s"))
	}
	if err := r.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("reserve-stock retried %s; send-email retried %s.\n", retried["reserve-stock"], retried["send-email"])
	fmt.Println("Done: each handler retried order-7 on its own; router closed.")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "other-brokers:", err)
	os.Exit(1)
}
