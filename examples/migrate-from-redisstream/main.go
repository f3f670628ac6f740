// Command migrate-from-redisstream moves a service from
// watermill-redisstream to redrive without losing or repeating a message.
// Both use the same stream format, so old and new code share the stream:
// the redrive service takes over the old consumer group where the old
// service stopped, messages from old producers still arrive, and consumers
// still on watermill-redisstream read what redrive publishes.
//
//	go -C examples run ./migrate-from-redisstream
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

// The service's consumer group and consumer name, the same before and after.
// redrive's router names a handler's group after the handler. A stable
// consumer name (say, the pod's) lets the new service first finish what the
// old one left pending under that name, instead of waiting for the claimer.
const (
	group    = "process-orders"
	consumer = "orders-1"
)

func main() {
	rdb, topic, cleanup := exampleredis.Setup("orders", group, "audit")
	defer cleanup()
	// watermill-redisstream closes the client it is given when it closes, so
	// each of its publishers and subscribers gets a client of its own.
	newOldClient := func() *redis.Client { return redis.NewClient(&redis.Options{Addr: rdb.Options().Addr}) }
	fmt.Printf("Stream %s, consumer group %s, consumer %s\n", topic, group, consumer)

	handled := make(chan string)
	handle := func(service string) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			handled <- fmt.Sprintf("%s service: handled %s", service, msg.UUID)
			return nil
		}
	}
	expect := func(n int) {
		for range n {
			select {
			case line := <-handled:
				fmt.Println("  " + line)
			case <-time.After(10 * time.Second):
				fail(errors.New("a message was not handled within 10 s"))
			}
		}
	}

	// An auditor in another group stays on watermill-redisstream throughout.
	audit := startAudit(newOldClient(), topic)

	oldPub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: newOldClient()}, nil)
	if err != nil {
		fail(err)
	}
	defer oldPub.Close()
	oldPublish := func(id string) {
		if err := oldPub.Publish(topic, message.NewMessage(id, nil)); err != nil {
			fail(err)
		}
		fmt.Printf("  old publisher (watermill-redisstream): published %s\n", id)
	}

	fmt.Println("Before: the service on watermill-redisstream")
	oldSub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        newOldClient(),
		ConsumerGroup:                 group,
		Consumer:                      consumer,
		DisableIndefiniteInitialBlock: true,
	}, nil)
	if err != nil {
		fail(err)
	}
	oldService, err := message.NewRouter(message.RouterConfig{}, nil)
	if err != nil {
		fail(err)
	}
	oldService.AddConsumerHandler(group, topic, oldSub, handle("old"))
	oldDone := make(chan struct{})
	go func() {
		defer close(oldDone)
		if err := oldService.Run(context.Background()); err != nil {
			fail(err)
		}
	}()
	<-oldService.Running()
	oldPublish("order-1")
	oldPublish("order-2")
	expect(2)
	// The handler reports a message before the router acks it, and
	// watermill-redisstream drops acks still on their way when it closes, so
	// stop the old service only once the group has nothing pending: an entry
	// left pending would be delivered again (at least once), not lost.
	waitNothingPending(rdb, topic)
	if err := oldService.Close(); err != nil {
		fail(err)
	}
	<-oldDone
	fmt.Println("  old service stopped; its consumer group keeps its place in the stream")
	oldPublish("order-3")
	fmt.Println("  (published while no service runs: it waits in the stream)")

	fmt.Println("After: the same service on redrive: the handler is named after the old consumer group")
	r, err := router.New(router.Config{
		Client:     rdb,
		Subscriber: redrive.SubscriberConfig{Consumer: consumer},
		Retry: middleware.RetryConfig{
			InitialInterval: 200 * time.Millisecond,
			OnRetry: func(e middleware.RetryEvent) {
				fmt.Printf("  new service: %s failed (%v); retry %d scheduled in %s\n", e.Message.UUID, e.Err, e.Attempt, e.Delay)
			},
		},
	}, nil)
	if err != nil {
		fail(err)
	}
	var failedOnce atomic.Bool
	newHandle := handle("new")
	_, err = r.AddConsumerHandler(group, topic, func(msg *message.Message) error {
		if msg.UUID == "order-4" && failedOnce.CompareAndSwap(false, true) {
			return errors.New("inventory service unavailable")
		}
		return newHandle(msg)
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
	expect(1)
	fmt.Println("  order-1 and order-2 were not handled again: the group's position carried over")

	newPub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer newPub.Close()
	if err := newPub.Publish(topic, message.NewMessage("order-4", nil)); err != nil {
		fail(err)
	}
	fmt.Println("  new publisher (redrive): published order-4")
	expect(1)
	oldPublish("order-5")
	fmt.Println("  (old producers keep working during the rollout)")
	expect(1)
	if err := r.Close(); err != nil {
		fail(err)
	}

	fmt.Printf("Audit, still on watermill-redisstream in its own group, read: %s\n", audit.wait(5))
	if err := audit.sub.Close(); err != nil {
		fail(err)
	}
	fmt.Println("Done: each order reached the service once (order-4 once more, as its retry), before and after the move.")
}

// auditor reads the topic with watermill-redisstream in the group "audit".
type auditor struct {
	sub  *redisstream.Subscriber
	mu   sync.Mutex
	seen []string
	more chan struct{}
}

func startAudit(client *redis.Client, topic string) *auditor {
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        client,
		ConsumerGroup:                 "audit",
		DisableIndefiniteInitialBlock: true,
	}, nil)
	if err != nil {
		fail(err)
	}
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		fail(err)
	}
	a := &auditor{sub: sub, more: make(chan struct{}, 100)}
	go func() {
		for msg := range msgs {
			a.mu.Lock()
			a.seen = append(a.seen, msg.UUID)
			a.mu.Unlock()
			msg.Ack()
			a.more <- struct{}{}
		}
	}()
	return a
}

// waitNothingPending waits until the service's consumer group has no entry
// delivered and not acked.
func waitNothingPending(rdb redis.UniversalClient, topic string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, err := rdb.XPending(context.Background(), topic, group).Result()
		if err != nil {
			fail(err)
		}
		if pending.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("%d entries still pending in group %s after 10 s", pending.Count, group))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits until the auditor read n messages and lists them.
func (a *auditor) wait(n int) string {
	for {
		a.mu.Lock()
		seen := strings.Join(a.seen, ", ")
		count := len(a.seen)
		a.mu.Unlock()
		if count >= n {
			return seen
		}
		select {
		case <-a.more:
		case <-time.After(10 * time.Second):
			fail(fmt.Errorf("audit read only %s", seen))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "migrate-from-redisstream:", err)
	os.Exit(1)
}
