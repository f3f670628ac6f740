package redrive

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
)

type testContextKey struct{}

// newTestSubscription is a fan-out subscription that is never started: what
// the dispatcher and the outcome watcher do to entries can be driven by hand,
// without Redis (fan-out settles without acking).
func newTestSubscription(t *testing.T, config SubscriberConfig) *subscription {
	t.Helper()
	// Never used: nothing here talks to Redis.
	client := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	config.Client = client
	config.setDefaults()
	if err := config.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), testContextKey{}, "from Subscribe")
	return newSubscription(ctx, &config, watermill.NopLogger{}, nil, "outcomes-test")
}

// handOutTest takes a slot for entry id, hands out a message for it as the
// dispatcher does, and returns it.
func handOutTest(t *testing.T, s *subscription, id string) *message.Message {
	t.Helper()
	if s.tryAcquireSlots(1) != 1 {
		t.Fatal("no free slot")
	}
	pe := &pendingEntry{stream: s.keys.Stream, id: id}
	s.inflight.track(pe)
	s.ahead.added(1)
	d := s.newDelivery(pe, message.NewMessage(watermill.NewUUID(), []byte(id)))
	s.handOut(d, 0)
	return d.msg
}

func freeSlots(s *subscription) int { return len(s.slots) }

// TestOutcomeWatcherSettlesOutOfOrder: messages acked while an older one is
// still out are settled (their slots freed) without waiting for it, and the
// older one is settled when it is acked at last.
func TestOutcomeWatcherSettlesOutOfOrder(t *testing.T) {
	s := newTestSubscription(t, SubscriberConfig{MaxInFlight: 8})
	var msgs []*message.Message
	for i := range 5 {
		msgs = append(msgs, handOutTest(t, s, fmt.Sprintf("1-%d", i)))
	}
	if got := freeSlots(s); got != 3 {
		t.Fatalf("free slots = %d with 5 of 8 out", got)
	}
	for _, m := range msgs[1:] {
		m.Ack()
	}
	redistest.WaitFor(t, 5*time.Second, func() bool { return freeSlots(s) == 7 },
		"the 4 acked messages settled while the oldest is out (free slots %d)", freeSlots(s))
	if got := s.handedOutCount.Load(); got != 1 {
		t.Fatalf("handedOutCount = %d, want 1 (the oldest)", got)
	}
	msgs[0].Ack()
	redistest.WaitFor(t, 5*time.Second, func() bool { return freeSlots(s) == 8 },
		"every slot free after all were acked (free slots %d)", freeSlots(s))
	if got := s.handedOutCount.Load(); got != 0 {
		t.Fatalf("handedOutCount = %d after all were acked", got)
	}
	if ids := s.inflight.ids(); len(ids[s.keys.Stream]) != 0 {
		t.Fatalf("entries still held after all were acked: %v", ids)
	}
	// The watcher's goroutine waits for more messages until reading stops.
	close(s.stopReading)
	done := make(chan struct{})
	go func() {
		s.handedOut.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the outcome watcher did not end after reading stopped")
	}
}

// TestOutcomeWatcherRedeliversNacked: a nacked message comes back through
// the redelivery queue as a copy, with a fresh context, and keeps its slot.
func TestOutcomeWatcherRedeliversNacked(t *testing.T) {
	s := newTestSubscription(t, SubscriberConfig{MaxInFlight: 4, NackResendSleep: NoSleep})
	first := handOutTest(t, s, "1-0")
	acked := handOutTest(t, s, "1-1")
	firstCtx := first.Context()
	acked.Ack()
	first.Nack()
	var again *delivery
	select {
	case again = <-s.redeliver:
	case <-time.After(5 * time.Second):
		t.Fatal("the nacked message was not queued for redelivery")
	}
	if again.msg == first || again.msg.UUID != first.UUID || string(again.msg.Payload) != "1-0" {
		t.Fatalf("redelivered %v (%q), want a copy of %s", again.msg.UUID, again.msg.Payload, first.UUID)
	}
	if firstCtx.Err() == nil {
		t.Fatal("the nacked delivery's context was not cancelled")
	}
	if again.msg.Context().Err() != nil {
		t.Fatal("the redelivery's context is already cancelled")
	}
	redistest.WaitFor(t, 5*time.Second, func() bool { return freeSlots(s) == 3 },
		"the acked message's slot freed, the nacked one's kept (free slots %d)", freeSlots(s))
	if again.entry.out.Load() {
		t.Fatal("the nacked entry is still marked out with a handler")
	}
}

// TestOutcomeWatcherStopsAtClose: messages still out when the subscription
// gives up on them (stopAll) have their contexts cancelled and stop counting
// in handedOut, and their entries stay held for release.
func TestOutcomeWatcherStopsAtClose(t *testing.T) {
	s := newTestSubscription(t, SubscriberConfig{MaxInFlight: 4})
	m := handOutTest(t, s, "1-0")
	close(s.stopReading)
	close(s.stopAll)
	done := make(chan struct{})
	go func() {
		s.handedOut.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handedOut did not end at stopAll")
	}
	if m.Context().Err() == nil {
		t.Fatal("the abandoned message's context was not cancelled")
	}
	if ids := s.inflight.ids(); len(ids[s.keys.Stream]) != 1 {
		t.Fatalf("held entries = %v, want the abandoned one (released at close)", ids)
	}
}

// TestDeliveryContext: a message's context carries its Delivery and the
// Subscribe context's values, is cancelled with its delivery, and passes
// that on to contexts derived from it, also through other contexts' values.
func TestDeliveryContext(t *testing.T) {
	s := newTestSubscription(t, SubscriberConfig{MaxInFlight: 2})
	pe := &pendingEntry{stream: s.keys.Stream, id: "1-0"}
	msg := message.NewMessage(watermill.NewUUID(), nil)
	d := s.newDelivery(pe, msg)

	info, ok := DeliveryOf(msg)
	if !ok || info.EntryID != "1-0" || info.Stream != s.keys.Stream || info.Topic != "outcomes-test" {
		t.Fatalf("DeliveryOf = %+v, %v", info, ok)
	}
	if got := msg.Context().Value(testContextKey{}); got != "from Subscribe" {
		t.Fatalf("Subscribe context value = %v", got)
	}
	wrapped := context.WithValue(msg.Context(), testContextKey{}, "handler")
	derived, cancel := context.WithCancel(wrapped)
	defer cancel()
	after := make(chan struct{})
	stop := context.AfterFunc(msg.Context(), func() { close(after) })
	defer stop()

	d.cancel()
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context was not cancelled with the delivery")
	}
	if !errors.Is(derived.Err(), context.Canceled) || !errors.Is(msg.Context().Err(), context.Canceled) {
		t.Fatalf("errors after cancel: derived %v, message %v", derived.Err(), msg.Context().Err())
	}
	select {
	case <-after:
	case <-time.After(5 * time.Second):
		t.Fatal("context.AfterFunc on the message context did not run")
	}
	if _, ok := DeliveryOf(message.NewMessage("other", nil)); ok {
		t.Fatal("DeliveryOf found a Delivery on a message redrive never read")
	}
}
