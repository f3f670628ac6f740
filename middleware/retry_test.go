package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// harness runs a Watermill router whose handlers read a topic through redrive
// subscribers and retry with the middleware under test.
type harness struct {
	t      *testing.T
	client *redis.Client
	topic  string
	poison string
	pub    *redrive.Publisher
	router *message.Router
	logger watermill.LoggerAdapter
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	client := redistest.NewClient(t)
	logger := watermill.NopLogger{}
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{
		t:      t,
		client: client,
		topic:  redistest.RandomTopic("retry"),
		poison: redistest.RandomTopic("poison"),
		pub:    pub,
		router: router,
		logger: logger,
	}
}

// addHandler adds a handler in consumer group group, wrapped by a Retry with
// config (Publisher and PoisonTopic filled in when empty).
func (h *harness) addHandler(group string, config middleware.RetryConfig, handler message.NoPublishHandlerFunc, inner ...message.HandlerMiddleware) {
	h.t.Helper()
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: h.client, ConsumerGroup: group, CloseTimeout: time.Second}, h.logger)
	if err != nil {
		h.t.Fatal(err)
	}
	if config.Publisher == nil {
		config.Publisher = h.pub
	}
	if config.PoisonTopic == "" {
		config.PoisonTopic = h.poison
	}
	retry, err := middleware.NewRetry(config, h.logger)
	if err != nil {
		h.t.Fatal(err)
	}
	handlerFunc := h.router.AddConsumerHandler(group, h.topic, sub, handler)
	handlerFunc.AddMiddleware(retry.Middleware)
	handlerFunc.AddMiddleware(inner...)
}

func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.router.Run(ctx); err != nil {
			h.t.Errorf("router: %v", err)
		}
	}()
	h.t.Cleanup(func() {
		cancel()
		_ = h.router.Close()
		<-done
	})
	select {
	case <-h.router.Running():
	case <-time.After(10 * time.Second):
		h.t.Fatal("router did not start")
	}
}

func (h *harness) publish(payloads ...string) []string {
	h.t.Helper()
	var ids []string
	var msgs []*message.Message
	for _, p := range payloads {
		msg := message.NewMessage(watermill.NewUUID(), []byte(p))
		ids = append(ids, msg.UUID)
		msgs = append(msgs, msg)
	}
	if err := h.pub.Publish(h.topic, msgs...); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// poisoned reads every message in the poison topic.
func (h *harness) poisoned() []*message.Message {
	h.t.Helper()
	entries, err := h.client.XRange(context.Background(), h.poison, "-", "+").Result()
	if err != nil {
		h.t.Fatal(err)
	}
	var msgs []*message.Message
	for _, e := range entries {
		msg, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			h.t.Fatal(err)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

type delivery struct {
	at       time.Time
	metadata message.Metadata
}

// recorder records every delivery of every message, by UUID.
type recorder struct {
	mu         sync.Mutex
	deliveries map[string][]delivery
	changed    chan struct{}
}

func newRecorder() *recorder {
	return &recorder{deliveries: map[string][]delivery{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) record(msg *message.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	md := message.Metadata{}
	for k, v := range msg.Metadata {
		md[k] = v
	}
	r.deliveries[msg.UUID] = append(r.deliveries[msg.UUID], delivery{at: time.Now(), metadata: md})
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return len(r.deliveries[msg.UUID])
}

func (r *recorder) of(uuid string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries[uuid]...)
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	redistest.WaitFor(t, timeout, cond, "%s", msg)
}

func TestRetryAttemptsSpacingAndPoison(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	var poisonEvents []middleware.PoisonEvent
	var retryEvents []middleware.RetryEvent
	var eventsMu sync.Mutex
	h.addHandler("billing", middleware.RetryConfig{
		MaxRetries:      3,
		InitialInterval: 100 * time.Millisecond,
		MaxInterval:     time.Second,
		Multiplier:      2,
		OnRetry: func(e middleware.RetryEvent) {
			eventsMu.Lock()
			defer eventsMu.Unlock()
			retryEvents = append(retryEvents, e)
		},
		OnPoison: func(e middleware.PoisonEvent) {
			eventsMu.Lock()
			defer eventsMu.Unlock()
			poisonEvents = append(poisonEvents, e)
		},
	}, func(msg *message.Message) error {
		n := rec.record(msg)
		return fmt.Errorf("attempt %d failed", n)
	})
	h.run()
	ids := h.publish("always fails")

	waitFor(t, 20*time.Second, func() bool { return len(h.poisoned()) == 1 }, "message never reached the poison topic")

	got := rec.of(ids[0])
	if len(got) != 4 {
		t.Fatalf("handler ran %d times, want 4 (1 + MaxRetries 3)", len(got))
	}
	wantDelays := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for i := 1; i < len(got); i++ {
		st, err := middleware.ReadRetryState(got[i].metadata)
		if err != nil {
			t.Fatal(err)
		}
		if st.Attempts != i {
			t.Errorf("delivery %d: attempts = %d, want %d", i+1, st.Attempts, i)
		}
		if d := st.History[len(st.History)-1].Delay; d != wantDelays[i-1] {
			t.Errorf("delivery %d: scheduled delay %s, want %s (jitter 0)", i+1, d, wantDelays[i-1])
		}
		// Never early: a retry arrives at or after the due time it was given.
		if got[i].at.Before(st.NextAttemptAt.Truncate(time.Millisecond)) {
			t.Errorf("delivery %d arrived at %s, before its due time %s", i+1, got[i].at, st.NextAttemptAt)
		}
		if gap := got[i].at.Sub(got[i-1].at); gap < wantDelays[i-1] {
			t.Errorf("delivery %d came %s after the previous one, want at least %s", i+1, gap, wantDelays[i-1])
		}
	}

	poisoned := h.poisoned()[0]
	if poisoned.UUID != ids[0] || string(poisoned.Payload) != "always fails" {
		t.Errorf("poisoned message = %s %q, want %s %q", poisoned.UUID, poisoned.Payload, ids[0], "always fails")
	}
	wantMD := map[string]string{
		wmiddleware.ReasonForPoisonedKey: "max retries exceeded (3): attempt 4 failed",
		redrive.MetadataPoisonReason:     string(redrive.PoisonReasonMaxRetries),
		wmiddleware.PoisonedTopicKey:     h.topic,
		wmiddleware.PoisonedHandlerKey:   "billing",
		middleware.MetadataAttempts:      "4",
		middleware.MetadataLastError:     "attempt 4 failed",
	}
	for k, want := range wantMD {
		if v := poisoned.Metadata.Get(k); v != want {
			t.Errorf("poison metadata %s = %q, want %q", k, v, want)
		}
	}
	st, err := middleware.ReadRetryState(poisoned.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.History) != 4 || !st.NextAttemptAt.IsZero() || st.FirstFailedAt.After(st.LastFailedAt) {
		t.Errorf("poison retry state = %+v, want 4 history entries, no next attempt, first <= last", st)
	}
	for i, a := range st.History {
		if a.Number != i+1 || a.Error != fmt.Sprintf("attempt %d failed", i+1) {
			t.Errorf("history[%d] = %+v", i, a)
		}
	}

	ctx := context.Background()
	pending, err := h.client.XPending(ctx, h.topic, "billing").Result()
	if err != nil {
		t.Fatal(err)
	}
	retryKeys := redrive.KeysFor(h.topic)
	waiting, _ := h.client.ZCard(ctx, retryKeys.GroupRetryDelayed("billing")).Result()
	retryLen, _ := h.client.XLen(ctx, retryKeys.GroupRetry("billing")).Result()
	if pending.Count != 0 || waiting != 0 || retryLen != 0 {
		t.Errorf("after poisoning: %d pending, %d delayed, %d in retry stream; want all 0", pending.Count, waiting, retryLen)
	}
	eventsMu.Lock()
	defer eventsMu.Unlock()
	if len(retryEvents) != 3 || len(poisonEvents) != 1 || poisonEvents[0].Attempts != 4 {
		t.Errorf("hooks: %d retries, %d poisons (%+v); want 3 and 1 with 4 attempts", len(retryEvents), len(poisonEvents), poisonEvents)
	} else if e := poisonEvents[0]; e.ReasonCode != redrive.PoisonReasonMaxRetries || e.Reason != wantMD[wmiddleware.ReasonForPoisonedKey] {
		t.Errorf("poison event reason %q (%q), want %q (%q)", e.Reason, e.ReasonCode, wantMD[wmiddleware.ReasonForPoisonedKey], redrive.PoisonReasonMaxRetries)
	}
}

func TestRetryDoesNotBlockOtherMessages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	var okMu sync.Mutex
	okHandled := 0
	var okDoneAt time.Time
	h.addHandler("orders", middleware.RetryConfig{
		MaxRetries:      1,
		InitialInterval: 2 * time.Second,
		MaxInterval:     2 * time.Second,
	}, func(msg *message.Message) error {
		if string(msg.Payload) == "bad" {
			if rec.record(msg) == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		}
		okMu.Lock()
		defer okMu.Unlock()
		okHandled++
		if okHandled == 200 {
			okDoneAt = time.Now()
		}
		return nil
	})
	h.run()
	bad := h.publish("bad")
	good := make([]string, 200)
	for i := range good {
		good[i] = "good"
	}
	h.publish(good...)

	waitFor(t, 30*time.Second, func() bool { return len(rec.of(bad[0])) == 2 }, "the failed message was never retried")
	okMu.Lock()
	defer okMu.Unlock()
	if okHandled != 200 {
		t.Fatalf("%d of 200 other messages handled", okHandled)
	}
	// The retry was due 2 s after the failure; all others were handled before
	// it, so none waited behind the failing message.
	retriedAt := rec.of(bad[0])[1].at
	if !okDoneAt.Before(retriedAt) {
		t.Errorf("other messages finished at %s, after the retry at %s: they were blocked", okDoneAt, retriedAt)
	}
}

func TestRetryPermanentErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	errNotFound := errors.New("customer not found")
	h.addHandler("perm", middleware.RetryConfig{
		MaxRetries:      5,
		InitialInterval: 10 * time.Millisecond,
		ShouldRetry:     func(err error) bool { return !errors.Is(err, errNotFound) },
	}, func(msg *message.Message) error {
		rec.record(msg)
		switch string(msg.Payload) {
		case "permanent":
			return middleware.Permanent(errors.New("invalid payload"))
		case "should-not-retry":
			return fmt.Errorf("lookup: %w", errNotFound)
		}
		return nil
	})
	h.run()
	ids := h.publish("permanent", "should-not-retry")
	waitFor(t, 20*time.Second, func() bool { return len(h.poisoned()) == 2 }, "permanent errors were not poisoned")
	reasons := map[string]string{}
	for _, m := range h.poisoned() {
		reasons[m.UUID] = m.Metadata.Get(wmiddleware.ReasonForPoisonedKey)
		if code := m.Metadata.Get(redrive.MetadataPoisonReason); code != string(redrive.PoisonReasonPermanent) {
			t.Errorf("%s: %s = %q, want %q", m.UUID, redrive.MetadataPoisonReason, code, redrive.PoisonReasonPermanent)
		}
		if m.Metadata.Get(middleware.MetadataAttempts) != "1" {
			t.Errorf("%s: attempts %q, want 1", m.UUID, m.Metadata.Get(middleware.MetadataAttempts))
		}
	}
	if want := "permanent error: permanent: invalid payload"; reasons[ids[0]] != want {
		t.Errorf("reason = %q, want %q", reasons[ids[0]], want)
	}
	if want := "permanent error (ShouldRetry): lookup: customer not found"; reasons[ids[1]] != want {
		t.Errorf("reason = %q, want %q", reasons[ids[1]], want)
	}
	for _, id := range ids {
		if n := len(rec.of(id)); n != 1 {
			t.Errorf("%s handled %d times, want 1", id, n)
		}
	}
}

func TestRetryMaxElapsedTime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	h.addHandler("elapsed", middleware.RetryConfig{
		MaxRetries:      100,
		InitialInterval: 100 * time.Millisecond,
		MaxInterval:     time.Second,
		Multiplier:      2,
		MaxElapsedTime:  250 * time.Millisecond,
	}, func(msg *message.Message) error {
		rec.record(msg)
		return errors.New("still failing")
	})
	h.run()
	ids := h.publish("x")
	waitFor(t, 20*time.Second, func() bool { return len(h.poisoned()) == 1 }, "message was not poisoned after MaxElapsedTime")
	p := h.poisoned()[0]
	if r := p.Metadata.Get(wmiddleware.ReasonForPoisonedKey); r != "max elapsed time exceeded (250ms): still failing" {
		t.Errorf("reason = %q", r)
	}
	if code := middleware.PoisonReasonOf(p.Metadata); code != redrive.PoisonReasonMaxElapsedTime {
		t.Errorf("PoisonReasonOf = %q, want %q", code, redrive.PoisonReasonMaxElapsedTime)
	}
	st, err := middleware.ReadRetryState(p.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := st.LastFailedAt.Sub(st.FirstFailedAt); elapsed < 250*time.Millisecond {
		t.Errorf("poisoned after %s, before MaxElapsedTime", elapsed)
	}
	// Failures come at about 0, 100 and 300 ms: the third is past 250 ms.
	// A very slow machine may deliver the second one late enough to stop
	// there; far fewer than MaxRetries in any case.
	if n := len(rec.of(ids[0])); n < 2 || n > 3 || st.Attempts != n {
		t.Errorf("handled %d times with %d attempts recorded; want 2 or 3, equal", n, st.Attempts)
	}
}

func TestRetryReachesOnlyTheFailingGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	recA, recB := newRecorder(), newRecorder()
	cfg := middleware.RetryConfig{InitialInterval: 50 * time.Millisecond}
	h.addHandler("group-a", cfg, func(msg *message.Message) error {
		if recA.record(msg) == 1 {
			return errors.New("A fails once")
		}
		return nil
	})
	h.addHandler("group-b", cfg, func(msg *message.Message) error {
		recB.record(msg)
		return nil
	})
	h.run()
	payloads := make([]string, 50)
	for i := range payloads {
		payloads[i] = fmt.Sprint(i)
	}
	ids := h.publish(payloads...)
	waitFor(t, 30*time.Second, func() bool {
		for _, id := range ids {
			if len(recA.of(id)) < 2 {
				return false
			}
		}
		return true
	}, "group A did not retry every message")
	// Let group B catch up with anything a wrong design would have sent it.
	waitFor(t, 10*time.Second, func() bool {
		for _, id := range ids {
			if len(recB.of(id)) < 1 {
				return false
			}
		}
		return true
	}, "group B missed messages")
	ctx := context.Background()
	waitFor(t, 10*time.Second, func() bool {
		pa, err1 := h.client.XPending(ctx, h.topic, "group-a").Result()
		pr, err2 := h.client.XPending(ctx, redrive.KeysFor(h.topic).GroupRetry("group-a"), "group-a").Result()
		return err1 == nil && err2 == nil && pa.Count == 0 && pr.Count == 0
	}, "group A left entries pending")
	for _, id := range ids {
		if n := len(recA.of(id)); n != 2 {
			t.Errorf("group A handled %s %d times, want 2", id, n)
		}
		if n := len(recB.of(id)); n != 1 {
			t.Errorf("group B handled %s %d times, want 1", id, n)
		}
	}
	if b, _ := h.client.Exists(ctx, redrive.KeysFor(h.topic).GroupRetry("group-b")).Result(); b == 1 {
		if n, _ := h.client.XLen(ctx, redrive.KeysFor(h.topic).GroupRetry("group-b")).Result(); n != 0 {
			t.Errorf("group B's retry stream holds %d entries", n)
		}
	}
}

// TestRetryComposesWithWatermillMiddleware runs the order the README
// recommends: Retry outermost, then Recoverer (a panic becomes a retry), then
// Timeout (a slow attempt becomes a retry), CorrelationID and InstantAck.
func TestRetryComposesWithWatermillMiddleware(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	throttle := wmiddleware.NewThrottle(1000, time.Second)
	h.router.AddMiddleware(wmiddleware.CorrelationID, throttle.Middleware)
	h.addHandler("composed", middleware.RetryConfig{InitialInterval: 20 * time.Millisecond, MaxRetries: 2},
		func(msg *message.Message) error {
			n := rec.record(msg)
			switch string(msg.Payload) {
			case "panics":
				if n == 1 {
					panic("boom")
				}
			case "slow":
				if n == 1 {
					<-msg.Context().Done() // cancelled by Timeout
					return msg.Context().Err()
				}
			case "panics-always":
				panic("always")
			}
			return nil
		},
		wmiddleware.Recoverer,
		wmiddleware.Timeout(300*time.Millisecond),
	)
	h.run()
	ids := h.publish("panics", "slow", "panics-always")
	waitFor(t, 30*time.Second, func() bool {
		return len(rec.of(ids[0])) == 2 && len(rec.of(ids[1])) == 2 && len(h.poisoned()) == 1
	}, "panicking and slow messages were not retried to success, or the always-panicking one not poisoned")
	p := h.poisoned()[0]
	if p.UUID != ids[2] {
		t.Errorf("poisoned %s, want %s", p.UUID, ids[2])
	}
	if got := p.Metadata.Get(middleware.MetadataLastError); got == "" {
		t.Error("poisoned message has no last error")
	}
	if n := len(rec.of(ids[2])); n != 3 {
		t.Errorf("always-panicking message handled %d times, want 3 (1 + 2 retries)", n)
	}
}

func TestRetryWithInstantAck(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := newRecorder()
	h.addHandler("instant", middleware.RetryConfig{InitialInterval: 20 * time.Millisecond},
		func(msg *message.Message) error {
			if rec.record(msg) == 1 {
				return errors.New("fails after InstantAck already acked it")
			}
			return nil
		},
		wmiddleware.InstantAck,
	)
	h.run()
	// Many messages: the race between the router's ack and the failure only
	// shows on some of them.
	payloads := make([]string, 300)
	for i := range payloads {
		payloads[i] = fmt.Sprint(i)
	}
	ids := h.publish(payloads...)
	waitFor(t, 30*time.Second, func() bool {
		for _, id := range ids {
			if len(rec.of(id)) != 2 {
				return false
			}
		}
		return true
	}, "messages acked by InstantAck were not retried after failing")
}

func TestRetryConfigValidation(t *testing.T) {
	pub := &redrive.Publisher{}
	cases := []struct {
		name   string
		config middleware.RetryConfig
		want   string
	}{
		{"no publisher", middleware.RetryConfig{PoisonTopic: "p"}, "Publisher"},
		{"no poison topic", middleware.RetryConfig{Publisher: pub}, "PoisonTopic"},
		{"bad multiplier", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", Multiplier: 0.5}, "Multiplier"},
		{"bad jitter", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", RandomizationFactor: 1.5}, "RandomizationFactor"},
		{"max below initial", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", InitialInterval: time.Minute, MaxInterval: time.Second}, "MaxInterval"},
		{"negative retries", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", MaxRetries: -5}, "MaxRetries"},
		{"negative elapsed", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", MaxElapsedTime: -time.Second}, "MaxElapsedTime"},
	}
	for _, c := range cases {
		_, err := middleware.NewRetry(c.config, nil)
		if err == nil || !containsWord(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
}

func TestRetryConfigValidatePolicy(t *testing.T) {
	cases := []struct {
		name   string
		config middleware.RetryConfig
		want   string // "" for valid
	}{
		{"empty: defaults, Publisher and PoisonTopic come later", middleware.RetryConfig{}, ""},
		{"bad multiplier", middleware.RetryConfig{Multiplier: 0.5}, "Multiplier"},
		{"max below initial", middleware.RetryConfig{InitialInterval: time.Minute, MaxInterval: time.Second}, "MaxInterval"},
		{"durable without its store", middleware.RetryConfig{Delay: middleware.DelayDurable}, "Durable"},
	}
	for _, c := range cases {
		err := c.config.ValidatePolicy()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: ValidatePolicy() = %v, want nil", c.name, err)
		case c.want != "" && (err == nil || !containsWord(err.Error(), c.want)):
			t.Errorf("%s: ValidatePolicy() = %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}
