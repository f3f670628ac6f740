// Command delayed schedules messages with Watermill's components/delay
// package: delay.Message on one message, delay.WithContext through a
// delay.NewPublisher, and the publisher's default delay. redrive keeps each
// in the topic's delayed set until due, then moves it into the stream; the
// handler receives them in due order, whatever the publishing order.
//
//	go -C examples run ./delayed
//
// It uses the Redis at REDIS_ADDR (default 127.0.0.1:6379) when one answers,
// else an embedded in-memory Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/examples/internal/timeline"
	"github.com/redrive-go/redrive/router"
)

func main() {
	rdb, topic, cleanup := exampleredis.Setup("reminders", "send-reminder")
	defer cleanup()

	// One message at a time, in stream order, so the output shows the order
	// in which they became due.
	r, err := router.New(router.Config{Client: rdb, Subscriber: redrive.SubscriberConfig{MaxInFlight: 1}}, nil)
	if err != nil {
		fail(err)
	}
	received := make(chan *message.Message)
	_, err = r.AddConsumerHandler("send-reminder", topic, func(msg *message.Message) error {
		received <- msg
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

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer pub.Close()
	// A delay publisher applies the delay set in a message's context, else
	// its default one.
	delayPub, err := delay.NewPublisher(pub, delay.PublisherConfig{
		DefaultDelayGenerator: func(delay.DefaultDelayGeneratorParams) (delay.Delay, error) {
			return delay.For(time.Second), nil
		},
	})
	if err != nil {
		fail(err)
	}

	step := timeline.Start().Step
	publish := func(p message.Publisher, msg *message.Message, how string) {
		if err := p.Publish(topic, msg); err != nil {
			fail(err)
		}
		step("published %-12s %s", msg.UUID, how)
	}

	later := message.NewMessage("in-1.5s", []byte("delay.Message(msg, delay.For(1500ms))"))
	delay.Message(later, delay.For(1500*time.Millisecond))
	publish(pub, later, "with delay.Message: due in 1.5 s")

	soon := message.NewMessage("in-0.5s", []byte("delay.WithContext(ctx, delay.For(500ms))"))
	soon.SetContext(delay.WithContext(context.Background(), delay.For(500*time.Millisecond)))
	publish(delayPub, soon, "through delay.NewPublisher with delay.WithContext: due in 0.5 s")

	publish(delayPub, message.NewMessage("in-1s", []byte("the delay publisher's default")), "through delay.NewPublisher, no delay set: its default, 1 s")
	publish(pub, message.NewMessage("now", []byte("no delay")), "without a delay: straight into the stream")

	waiting, err := rdb.ZCard(context.Background(), redrive.KeysFor(topic).Delayed).Result()
	if err != nil {
		fail(err)
	}
	fmt.Printf("Waiting in the delayed set %s: %d messages\n", redrive.KeysFor(topic).Delayed, waiting)

	for range 4 {
		select {
		case msg := <-received:
			step("received  %-12s (%s)", msg.UUID, msg.Payload)
		case <-time.After(10 * time.Second):
			fail(errors.New("the delayed messages did not all arrive within 10 s"))
		}
	}
	if err := r.Close(); err != nil {
		fail(err)
	}
	fmt.Println("Done: each message arrived when due, in due order.")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "delayed:", err)
	os.Exit(1)
}
