package middleware_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

func newDeduplicator(t *testing.T, h *harness, window time.Duration) *middleware.Deduplicator {
	t.Helper()
	d, err := middleware.NewDeduplicator(middleware.DeduplicatorConfig{
		Client: h.client, Window: window, Prefix: redistest.RandomTopic("dedup") + ":",
		PollInterval: 10 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// addOrdered adds a handler in group read by consumers subscribers, wrapped
// by middleware in the order given (first outermost).
func (h *harness) addOrdered(group string, consumers int, handler message.NoPublishHandlerFunc, m ...message.HandlerMiddleware) {
	h.t.Helper()
	for i := range consumers {
		sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: h.client, ConsumerGroup: group, CloseTimeout: time.Second}, h.logger)
		if err != nil {
			h.t.Fatal(err)
		}
		name := group
		if i > 0 {
			name = group + "-" + string(rune('a'+i))
		}
		h.router.AddConsumerHandler(name, h.topic, sub, handler).AddMiddleware(m...)
	}
}

func (h *harness) newRetry(config middleware.RetryConfig) *middleware.Retry {
	h.t.Helper()
	config.Publisher, config.PoisonTopic = h.pub, h.poison
	r, err := middleware.NewRetry(config, h.logger)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// publishCopies publishes n copies of one message (same UUID).
func (h *harness) publishCopies(uuid string, n int) {
	h.t.Helper()
	for range n {
		if err := h.pub.Publish(h.topic, message.NewMessage(uuid, []byte("p"))); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestDeduplicatorLetsRetriesThroughInEitherOrder(t *testing.T) {
	t.Parallel()
	for _, dedupOutside := range []bool{false, true} {
		h := newHarness(t)
		rec := newRecorder()
		retry := h.newRetry(middleware.RetryConfig{InitialInterval: 10 * time.Millisecond})
		dedup := newDeduplicator(t, h, time.Minute)
		chain := []message.HandlerMiddleware{retry.Middleware, dedup.Middleware}
		if dedupOutside {
			chain = []message.HandlerMiddleware{dedup.Middleware, retry.Middleware}
		}
		h.addOrdered("dedup", 1, func(msg *message.Message) error {
			if rec.record(msg) <= 2 {
				return errors.New("not yet")
			}
			return nil
		}, chain...)
		h.run()
		h.publishCopies("m1", 1)
		waitFor(t, 20*time.Second, func() bool { return len(rec.of("m1")) == 3 }, "retries were dropped as duplicates")
		// A true duplicate after the success is dropped.
		h.publishCopies("m1", 1)
		h.publishCopies("m2", 1)
		waitFor(t, 20*time.Second, func() bool { return len(rec.of("m2")) == 3 }, "m2 not handled")
		if n := len(rec.of("m1")); n != 3 {
			t.Errorf("dedup outside retry %v: m1 ran %d times, want 3 (the duplicate dropped)", dedupOutside, n)
		}
		if len(h.poisoned()) != 0 {
			t.Errorf("dedup outside retry %v: something was poisoned", dedupOutside)
		}
	}
}

// TestDeduplicatorDropsACopyArrivingDuringTheFirst has two consumers of one
// group: the second copy arrives while the first is still being handled,
// waits, and is dropped once the first succeeds.
func TestDeduplicatorDropsACopyArrivingDuringTheFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	retry := h.newRetry(middleware.RetryConfig{InitialInterval: 10 * time.Millisecond})
	dedup := newDeduplicator(t, h, time.Minute)
	release := make(chan struct{})
	h.addOrdered("pair", 2, func(msg *message.Message) error {
		rec.record(msg)
		<-release
		return nil
	}, retry.Middleware, dedup.Middleware)
	h.run()
	h.publishCopies("same", 2)
	// Both copies delivered (one in the handler, one waiting on the key).
	waitFor(t, 20*time.Second, func() bool {
		p, err := h.client.XPending(context.Background(), h.topic, "pair").Result()
		return err == nil && p.Count == 2 && len(rec.of("same")) >= 1
	}, "both copies were not delivered")
	close(release)
	waitFor(t, 20*time.Second, func() bool {
		p, err := h.client.XPending(context.Background(), h.topic, "pair").Result()
		return err == nil && p.Count == 0
	}, "copies not acked")
	if n := len(rec.of("same")); n != 1 {
		t.Errorf("handler ran %d times on two copies, want once", n)
	}
}

// TestWatermillDeduplicatorWithRetries shows how Watermill's Deduplicator
// meets retries: with its default key (a hash of the payload) a retry is
// dropped as a duplicate, so the failed message is never retried nor
// poisoned; RetryAwareKey lets each retry through.
func TestWatermillDeduplicatorWithRetries(t *testing.T) {
	t.Parallel()
	for _, retryAware := range []bool{false, true} {
		h := newHarness(t)
		rec := newRecorder()
		repo, err := middleware.NewExpiringKeyRepository(h.client, time.Minute, redistest.RandomTopic("wmdedup")+":")
		if err != nil {
			t.Fatal(err)
		}
		key := wmiddleware.NewMessageHasherSHA256(math.MaxInt64)
		if retryAware {
			key = middleware.RetryAwareKey(key)
		}
		dedup := &wmiddleware.Deduplicator{KeyFactory: key, Repository: repo, Timeout: time.Second}
		retry := h.newRetry(middleware.RetryConfig{InitialInterval: 10 * time.Millisecond, OnRetry: func(middleware.RetryEvent) {}})
		h.addOrdered("wm", 1, func(msg *message.Message) error {
			if rec.record(msg) <= 2 {
				return errors.New("not yet")
			}
			return nil
		}, retry.Middleware, dedup.Middleware)
		h.run()
		h.publishCopies("m", 1)
		if retryAware {
			waitFor(t, 20*time.Second, func() bool { return len(rec.of("m")) == 3 }, "retries dropped despite RetryAwareKey")
			h.publishCopies("m", 1) // same payload, no attempts: a duplicate
			waitFor(t, 20*time.Second, func() bool { return consumed(h, "wm") }, "the duplicate was not consumed")
			if n := len(rec.of("m")); n != 3 {
				t.Errorf("RetryAwareKey: m ran %d times, want 3", n)
			}
			continue
		}
		// The retry is scheduled, then dropped as a duplicate when it comes.
		waitFor(t, 20*time.Second, func() bool {
			return h.client.ZCard(context.Background(), redrive.KeysFor(h.topic).GroupRetryDelayed("wm")).Val() == 0 &&
				len(rec.of("m")) >= 1 && consumed(h, "wm")
		}, "retry not settled")
		if n := len(rec.of("m")); n != 1 || len(h.poisoned()) != 0 {
			t.Errorf("default key: m ran %d times and %d poisoned; Watermill's Deduplicator was expected to drop the retry", n, len(h.poisoned()))
		}
	}
}

// consumed tells whether group read every entry of the topic and of its
// retry stream (one at least), and has none pending.
func consumed(h *harness, group string) bool {
	ctx := context.Background()
	for _, stream := range []string{h.topic, redrive.KeysFor(h.topic).GroupRetry(group)} {
		info, err := h.client.XInfoStream(ctx, stream).Result()
		if err != nil {
			return false
		}
		groups, err := h.client.XInfoGroups(ctx, stream).Result()
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Name == group && (g.LastDeliveredID != info.LastGeneratedID || g.Pending != 0) {
				return false
			}
		}
	}
	return true
}
