package tests

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// waitSubscriberClosed waits until sub refuses new subscriptions: its Close
// has begun.
func waitSubscriberClosed(t *testing.T, sub *redrive.Subscriber) {
	t.Helper()
	redistest.WaitFor(t, waitTimeout, func() bool {
		_, err := sub.Subscribe(context.Background(), redistest.RandomTopic("closed-probe-"))
		return errors.Is(err, redrive.ErrSubscriberClosed)
	}, "the router closed its subscriber")
}

// TestRouterCloseWithHandlersMidFlight: a Router closed while 100 handlers
// are mid-flight closes its subscriber first and then waits for them. The
// handlers keep live contexts after the subscriber closed, each finishes, all
// 100 acks are in Redis when Router.Close returns, and nothing is delivered
// again.
func TestRouterCloseWithHandlersMidFlight(t *testing.T) {
	t.Parallel()
	const (
		handlers = 100
		group    = "g"
	)
	client, topic, pub := newGroupTopic(t, "router-close-")

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, nil)
	router, err := message.NewRouter(message.RouterConfig{}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		started   sync.WaitGroup
		release   = make(chan struct{})
		handled   = newHandledCounts()
		cancelled atomic.Int32
	)
	started.Add(handlers)
	router.AddConsumerHandler("mid-flight", topic, sub, func(msg *message.Message) error {
		started.Done()
		<-release
		if msg.Context().Err() != nil {
			cancelled.Add(1)
		}
		handled.add("router", msg)
		return nil
	})
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	publish(t, pub, topic, newMessages("m", handlers)...)
	started.Wait()

	closed := make(chan error, 1)
	go func() { closed <- router.Close() }()
	waitSubscriberClosed(t, sub)
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Router.Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Router.Close did not return after its handlers finished")
	}
	// The Router waits for its subscription's channel, which closes after
	// the acks were sent: they are in Redis when Router.Close returns.
	if n := pendingCount(t, client, topic, group); n != 0 {
		t.Errorf("%d of %d entries still pending when Router.Close returned", n, handlers)
	}
	if n := cancelled.Load(); n > 0 {
		t.Errorf("%d handlers saw their message context cancelled during a graceful shutdown", n)
	}
	if n := handled.unique(); n != handlers {
		t.Errorf("%d messages handled, want %d", n, handlers)
	}
	if twice := handled.handledTwice(); len(twice) > 0 {
		t.Errorf("delivered again: %v", twice)
	}
}

// TestShutdownDoesNotSpendRetries: a handler cut short because its
// subscriber shut down (its message context cancelled) does not count as a
// failed attempt: the retry middleware leaves no retry scheduled, and the
// message comes back to the group with no attempt recorded.
func TestShutdownDoesNotSpendRetries(t *testing.T) {
	t.Parallel()
	const group = "g"
	client, topic, pub := newGroupTopic(t, "shutdown-retries-")
	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group,
		// Cut the handler short soon after Close.
		CloseTimeout: 200 * time.Millisecond,
		MaxIdleTime:  time.Hour,
	}, nil)
	retry, err := middleware.NewRetry(middleware.RetryConfig{Publisher: pub, PoisonTopic: topic + "-poison"}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: time.Minute}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	router.AddConsumerHandler("cut-short", topic, sub, func(msg *message.Message) error {
		started <- struct{}{}
		<-msg.Context().Done()
		return msg.Context().Err()
	}).AddMiddleware(retry.Middleware)
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	published := newMessages("m", 1)
	publish(t, pub, topic, published...)
	<-started
	if err := router.Close(); err != nil {
		t.Fatalf("Router.Close: %v", err)
	}

	retries := redrive.KeysFor(topic).GroupRetryDelayed(group)
	if n, err := client.ZCard(context.Background(), retries).Result(); err != nil || n != 0 {
		t.Fatalf("retry set %s holds %d (%v), want no retry scheduled by a shutdown", retries, n, err)
	}
	next := collect(subscribe(t, newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, MaxIdleTime: time.Hour, ClaimInterval: 100 * time.Millisecond,
	}, nil), topic))
	next.waitUnique(t, 1)
	got := next.get(published[0].UUID)
	if got == nil {
		t.Fatalf("got %v, want %s back", next.ids(), published[0].UUID)
	}
	st, err := middleware.ReadRetryState(got.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempts != 0 {
		t.Errorf("message came back with %d attempts recorded, want 0: the shutdown spent a retry", st.Attempts)
	}
}

// A subscriber that closes gives back the messages its handlers did not
// settle, and the group's live consumers take them at once: a claim
// wake-up runs their claimer's pass, so they wait for no ClaimInterval
// (an hour here) and no MaxIdleTime (an hour too).
func TestGivenBackEntriesClaimedAtOnce(t *testing.T) {
	t.Parallel()
	const group = "g"
	client, topic, pub := newGroupTopic(t, "given-back-")
	config := redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group,
		MaxIdleTime: time.Hour, ClaimInterval: time.Hour, CloseTimeout: 100 * time.Millisecond,
	}
	leaving := newSubscriber(t, config, nil)
	leavingMsgs := subscribe(t, leaving, topic)
	staying := collect(subscribe(t, newSubscriber(t, config, nil), topic))

	// The leaving subscriber's handler takes one message and never settles
	// it; others wait in its read-ahead or go to the staying one.
	published := newMessages("m", 20)
	publish(t, pub, topic, published...)
	var held *message.Message
	select {
	case held = <-leavingMsgs:
	case <-time.After(waitTimeout):
		t.Fatal("the leaving subscriber got no message")
	}
	if err := leaving.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	staying.waitUnique(t, len(published))
	if !staying.has(held.UUID) {
		t.Fatalf("the message left unsettled (%s) did not reach the staying subscriber", held.UUID)
	}
	sameSet(t, "messages the staying subscriber got", staying.ids(), uuids(published))
}
