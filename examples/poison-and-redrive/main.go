// Command poison-and-redrive follows a message that always fails: its retries
// run out and it lands in the poison stream; it is inspected with redrive's
// admin API (what the redrive CLI shows), the bug is "fixed", and it is
// requeued to the consumer group that failed on it, where it succeeds.
//
//	go -C examples run ./poison-and-redrive
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
	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/examples/internal/exampleredis"
	"github.com/redrive-go/redrive/examples/internal/timeline"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

func main() {
	rdb, topic, cleanup := exampleredis.Setup("payments", "charge-card")
	defer cleanup()
	ctx := context.Background()

	tl := timeline.Start()
	step := tl.Step

	poisoned := make(chan struct{})
	r, err := router.New(router.Config{
		Client: rdb,
		// Two retries, 100 ms then 200 ms later; then the poison stream of
		// the topic (the default poison topic).
		Retry: middleware.RetryConfig{
			MaxRetries:      2,
			InitialInterval: 100 * time.Millisecond,
			OnRetry: func(e middleware.RetryEvent) {
				step("retry %d of %s scheduled in %s", e.Attempt, e.Message.UUID, e.Delay)
			},
			OnPoison: func(e middleware.PoisonEvent) {
				step("%s poisoned after %d attempts: %s", e.Message.UUID, e.Attempts, e.Reason)
				close(poisoned)
			},
		},
	}, nil)
	if err != nil {
		fail(err)
	}
	var fixed atomic.Bool
	succeeded := make(chan *message.Message, 1)
	_, err = r.AddConsumerHandler("charge-card", topic, func(msg *message.Message) error {
		if !fixed.Load() {
			err := errors.New(`card processor rejects currency "XTS"`)
			step("charge-card: %s failed: %v", msg.UUID, err)
			return err
		}
		succeeded <- msg
		return nil
	})
	if err != nil {
		fail(err)
	}
	go func() {
		if err := r.Run(ctx); err != nil {
			fail(err)
		}
	}()
	<-r.Running()
	defer r.Close()

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	defer pub.Close()
	step("publishing payment-42 to %s", topic)
	if err := pub.Publish(topic, message.NewMessage("payment-42", []byte(`{"amount": 10, "currency": "XTS"}`))); err != nil {
		fail(err)
	}
	wait(poisoned, "payment-42 was not poisoned within 10 s")

	fmt.Println("\nInspect with the admin API (the redrive CLI shows the same):")
	adm, err := admin.NewAdmin(admin.Config{Client: rdb}, nil)
	if err != nil {
		fail(err)
	}
	info, err := adm.TopicInfo(ctx, topic, admin.TopicInfoOptions{})
	if err != nil {
		fail(err)
	}
	fmt.Printf("  TopicInfo: stream length %d, poisoned %d (in %s)\n", info.Length, info.Poisoned, info.PoisonStream)
	for _, g := range info.Groups {
		fmt.Printf("    group %s: %d pending, %d retries waiting\n", g.Name, g.Pending, g.Retry.Delayed.Count)
	}
	list, err := adm.ListPoisoned(ctx, info.PoisonStream, admin.ListPoisonedOptions{})
	if err != nil {
		fail(err)
	}
	for _, m := range list.Messages {
		fmt.Printf("  ListPoisoned: %s  handler %s  attempts %d  reason %q\n", m.UUID, m.Handler, m.Attempts, m.Reason)
		fmt.Printf("    last error: %s; failed first at %+.3fs, last at %+.3fs\n", m.LastError,
			tl.Seconds(m.FirstFailedAt), tl.Seconds(m.LastFailedAt))
		fmt.Printf("    payload: %d bytes, not shown unless asked for (it can hold personal data)\n", m.PayloadSize)
	}

	fmt.Println("\nThe fix is deployed: the card processor now accepts XTS.")
	fixed.Store(true)
	sel := admin.Selector{OriginalTopic: topic, ReasonContains: middleware.ReasonMaxRetries}
	dry, err := adm.RequeuePoisoned(ctx, info.PoisonStream, sel, admin.RequeueOptions{DryRun: true})
	if err != nil {
		fail(err)
	}
	for _, o := range dry.Messages {
		fmt.Printf("  RequeuePoisoned, dry run: %s %s, to group %s\n", o.UUID, o.Status, o.Group)
	}
	res, err := adm.RequeuePoisoned(ctx, info.PoisonStream, sel, admin.RequeueOptions{})
	if err != nil {
		fail(err)
	}
	for _, o := range res.Messages {
		step("RequeuePoisoned: %s %s to %s (only group %s reads it)", o.UUID, o.Status, o.Target, o.Group)
	}
	select {
	case msg := <-succeeded:
		st, _ := middleware.ReadRetryState(msg.Metadata)
		step("charge-card: %s charged (retry count %d after the requeue; its history keeps the %d earlier failures; requeued %s time)",
			msg.UUID, st.Attempts, len(st.History), msg.Metadata.Get(admin.MetadataRequeueCount))
	case <-time.After(10 * time.Second):
		fail(errors.New("payment-42 did not succeed within 10 s of its requeue"))
	}

	left, err := adm.ListPoisoned(ctx, info.PoisonStream, admin.ListPoisonedOptions{})
	if err != nil {
		fail(err)
	}
	fmt.Printf("Done: the poison stream holds %d messages.\n", left.Total)
}

func wait(ch <-chan struct{}, timeoutMessage string) {
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		fail(errors.New(timeoutMessage))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "poison-and-redrive:", err)
	os.Exit(1)
}
