// Command two-groups shows two handlers on one topic, each in its own
// consumer group: both receive every order; billing fails on one of them and
// retries it, while shipping is untouched — the retry reaches billing's group
// only.
//
//	go -C examples run ./two-groups
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/examples/internal/timeline"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

func main() {
	rdb, topic, cleanup := exampleredis.Setup("orders", "billing", "shipping")
	defer cleanup()

	step := timeline.Start().Step

	r, err := router.New(router.Config{
		Client: rdb,
		Retry: middleware.RetryConfig{
			InitialInterval: 300 * time.Millisecond,
			OnRetry: func(e middleware.RetryEvent) {
				step("%s: retry %d of %s scheduled in %s, in %s's own retry set", e.Handler, e.Attempt, e.Message.UUID, e.Delay, e.Handler)
			},
		},
	}, nil)
	if err != nil {
		fail(err)
	}

	var mu sync.Mutex
	handled := map[string]map[string]int{"billing": {}, "shipping": {}}
	var wg sync.WaitGroup
	wg.Add(6) // 3 orders, each handled once by each group
	count := func(handler, uuid string) int {
		mu.Lock()
		defer mu.Unlock()
		handled[handler][uuid]++
		return handled[handler][uuid]
	}

	// Each handler gets its own consumer group, named after it.
	_, err = r.AddConsumerHandler("billing", topic, func(msg *message.Message) error {
		n := count("billing", msg.UUID)
		if msg.UUID == "order-2" && n == 1 {
			err := errors.New("payment gateway timeout")
			step("billing:  %s failed: %v", msg.UUID, err)
			return err
		}
		step("billing:  %s charged (attempt %d)", msg.UUID, n)
		wg.Done()
		return nil
	})
	if err != nil {
		fail(err)
	}
	_, err = r.AddConsumerHandler("shipping", topic, func(msg *message.Message) error {
		n := count("shipping", msg.UUID)
		step("shipping: %s shipped (attempt %d)", msg.UUID, n)
		wg.Done()
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
	fmt.Printf("Topic %s: handlers billing and shipping, each in its own consumer group\n", topic)

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer pub.Close()
	step("publishing order-1, order-2, order-3")
	for _, id := range []string{"order-1", "order-2", "order-3"} {
		if err := pub.Publish(topic, message.NewMessage(id, nil)); err != nil {
			fail(err)
		}
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		fail(errors.New("the orders were not all handled within 10 s"))
	}
	if err := r.Close(); err != nil {
		fail(err)
	}

	mu.Lock()
	fmt.Printf("Shipping handled order-2 %d time(s); billing handled it %d times.\n",
		handled["shipping"]["order-2"], handled["billing"]["order-2"])
	mu.Unlock()
	groups, err := rdb.XInfoGroups(context.Background(), topic).Result()
	if err != nil {
		fail(err)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	for _, g := range groups {
		fmt.Printf("Consumer group %s: %d pending\n", g.Name, g.Pending)
	}
	fmt.Println("Done: each group acked every order on its own; only billing saw the retry.")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "two-groups:", err)
	os.Exit(1)
}
