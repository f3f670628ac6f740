package brokers_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive/middleware"
)

// Backoff of the scenario: 300 ms, then 600 ms; poisoned at the third failure.
const (
	scenarioInitialInterval = 300 * time.Millisecond
	scenarioMaxRetries      = 2
	scenarioMessages        = 3
	waitTimeout             = 90 * time.Second
	// quietPeriod is how long the tests watch, once everything expected
	// arrived, that nothing more does.
	quietPeriod = 1500 * time.Millisecond
)

var errScenario = errors.New("scenario failure")

// recorder keeps when each handler ran on each payload.
type recorder struct {
	mu   sync.Mutex
	runs map[string][]time.Time // handler + "/" + payload
}

func newRecorder() *recorder { return &recorder{runs: map[string][]time.Time{}} }

// record notes a run and returns its number, from 1.
func (r *recorder) record(handler string, msg *message.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := handler + "/" + string(msg.Payload)
	r.runs[k] = append(r.runs[k], time.Now())
	return len(r.runs[k])
}

func (r *recorder) of(handler, payload string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.runs[handler+"/"+payload]...)
}

// collector reads a topic and keeps what arrives.
type collector struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func collect(t *testing.T, sub message.Subscriber, topic string) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe to %q: %v", topic, err)
	}
	c := &collector{}
	go func() {
		for msg := range ch {
			c.mu.Lock()
			c.msgs = append(c.msgs, msg)
			c.mu.Unlock()
			msg.Ack()
		}
	}()
	return c
}

func (c *collector) all() []*message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message.Message(nil), c.msgs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backoffs are the scenario's delays before retry 1, 2, …
func backoffs() []time.Duration {
	return []time.Duration{scenarioInitialInterval, 2 * scenarioInitialInterval}
}

// checkGaps asserts that run i+1 came no earlier than backoff i after run i,
// and returns how late the latest one was.
func checkGaps(t *testing.T, what string, runs []time.Time) time.Duration {
	t.Helper()
	var late time.Duration
	for i := 1; i < len(runs) && i <= len(backoffs()); i++ {
		gap := runs[i].Sub(runs[i-1])
		want := backoffs()[i-1]
		if gap < want {
			t.Errorf("%s: retry %d came %s after the failure, before its backoff of %s", what, i, gap, want)
		}
		late = max(late, gap-want)
	}
	return late
}

// newRetryRouter returns a router whose handlers all retry with cfg and the
// scenario's backoff, poisoning into poisonTopic.
func newRetryRouter(t *testing.T, cfg middleware.RetryConfig, poisonTopic string) *message.Router {
	t.Helper()
	cfg.PoisonTopic = poisonTopic
	cfg.MaxRetries = scenarioMaxRetries
	cfg.InitialInterval = scenarioInitialInterval
	cfg.MaxInterval = 10 * time.Second
	retry, err := middleware.NewRetry(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retry.Middleware, wmiddleware.Recoverer)
	return router
}

func startRouter(t *testing.T, router *message.Router) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	select {
	case <-router.Running():
	case err := <-done:
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		_ = router.Close()
		<-done
	})
}

func publish(t *testing.T, pub message.Publisher, topic string, payloads []string) {
	t.Helper()
	for _, p := range payloads {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(p))); err != nil {
			t.Fatalf("publish to %q: %v", topic, err)
		}
	}
}

// runRetryScenario runs on broker b three handlers: flaky fails twice per
// message then succeeds, steady succeeds, broken always fails. It checks the
// gaps between attempts, that steady runs once per message, that broken's
// messages are each poisoned once with Watermill's keys and no delay
// metadata, and that nothing more happens.
func runRetryScenario(t *testing.T, b broker) {
	id := randomName("")
	flaky, steady, broken := "flaky"+id, "steady"+id, "broken"+id
	base := randomName("orders")
	topicOf := func(handler string) string {
		if b.queue {
			return base + "_" + handler
		}
		return base
	}
	poisonTopic := randomName("poison")
	var topics []string
	for _, h := range []string{flaky, steady, broken} {
		topics = append(topics, topicOf(h))
	}
	forgetOnCleanup(t, b, append(topics, poisonTopic), []string{flaky, steady, broken, "poisonreader" + id})
	poison := collect(t, b.subscriber("poisonreader"+id), poisonTopic)

	router := newRetryRouter(t, b.retry, poisonTopic)

	rec := newRecorder()
	handlers := map[string]func(n int) error{
		flaky: func(n int) error {
			if n <= 2 {
				return fmt.Errorf("attempt %d: %w", n, errScenario)
			}
			return nil
		},
		steady: func(int) error { return nil },
		broken: func(int) error { return errScenario },
	}
	for name, fail := range handlers {
		sub := b.subscriber(name)
		h := func(msg *message.Message) error { return fail(rec.record(name, msg)) }
		router.AddConsumerHandler(name, topicOf(name), sub, h)
		if b.retryTopics {
			middleware.AddRetryHandler(router, name, topicOf(name), sub, h)
		}
	}
	startRouter(t, router)

	payloads := make([]string, scenarioMessages)
	for i := range payloads {
		payloads[i] = fmt.Sprintf(`{"m":%d}`, i) // JSON: PostgreSQL keeps payloads in a JSON column
	}
	if b.queue {
		for name := range handlers {
			publish(t, b.publisher, topicOf(name), payloads)
		}
	} else {
		publish(t, b.publisher, base, payloads)
	}

	settled := func() bool {
		for _, p := range payloads {
			if len(rec.of(flaky, p)) < 3 || len(rec.of(steady, p)) < 1 || len(rec.of(broken, p)) < 1+scenarioMaxRetries {
				return false
			}
		}
		return len(poison.all()) >= len(payloads)
	}
	waitFor(t, b.name+": every message handled and poisoned", settled)
	time.Sleep(quietPeriod)

	var late time.Duration
	for _, p := range payloads {
		if runs := rec.of(flaky, p); len(runs) != 3 {
			t.Errorf("%s: flaky ran %d times on %s, want 3", b.name, len(runs), p)
		} else {
			late = max(late, checkGaps(t, "flaky "+p, runs))
		}
		if runs := rec.of(steady, p); len(runs) != 1 {
			t.Errorf("%s: steady ran %d times on %s, want once (a retry of another handler reached it)", b.name, len(runs), p)
		}
		if runs := rec.of(broken, p); len(runs) != 1+scenarioMaxRetries {
			t.Errorf("%s: broken ran %d times on %s, want %d", b.name, len(runs), p, 1+scenarioMaxRetries)
		} else {
			late = max(late, checkGaps(t, "broken "+p, runs))
		}
	}
	checkPoisoned(t, b.name, poison.all(), payloads, topicOf(broken), broken)
	t.Logf("%s: latest retry came %s after its backoff (broker precision %s)", b.name, late, b.precision)
}

// checkPoisoned asserts one poison entry per payload, from handler, with
// Watermill's PoisonQueue keys and no delay metadata.
func checkPoisoned(t *testing.T, name string, got []*message.Message, payloads []string, topic, handler string) {
	t.Helper()
	var seen []string
	for _, msg := range got {
		seen = append(seen, string(msg.Payload))
		md := msg.Metadata
		if !strings.HasPrefix(md.Get(wmiddleware.ReasonForPoisonedKey), middleware.ReasonMaxRetries) {
			t.Errorf("%s: poisoned %s: reason %q", name, msg.Payload, md.Get(wmiddleware.ReasonForPoisonedKey))
		}
		if md.Get(wmiddleware.PoisonedTopicKey) != topic || md.Get(wmiddleware.PoisonedHandlerKey) != handler {
			t.Errorf("%s: poisoned %s: topic %q handler %q, want %q %q", name, msg.Payload,
				md.Get(wmiddleware.PoisonedTopicKey), md.Get(wmiddleware.PoisonedHandlerKey), topic, handler)
		}
		if md.Get(middleware.MetadataAttempts) != fmt.Sprint(1+scenarioMaxRetries) {
			t.Errorf("%s: poisoned %s: %s=%q", name, msg.Payload, middleware.MetadataAttempts, md.Get(middleware.MetadataAttempts))
		}
		for k := range md {
			if strings.HasPrefix(k, "_watermill_delayed") {
				t.Errorf("%s: poisoned %s carries delay metadata %s=%q", name, msg.Payload, k, md[k])
			}
		}
	}
	sort.Strings(seen)
	if fmt.Sprint(seen) != fmt.Sprint(payloads) {
		t.Errorf("%s: poison topic holds %v, want each of %v once", name, seen, payloads)
	}
}

func TestRetryScenario(t *testing.T) {
	brokers := []struct {
		name string
		make func(*testing.T) broker
	}{
		{"gochannel", newGoChannel},
		{"gochannel-durable", newGoChannelDurable},
		{"postgres-delayed", newPostgresDelayed},
		{"postgres-inprocess", func(t *testing.T) broker {
			b := newPostgresDelayed(t)
			b.name, b.retry, b.retryTopics, b.precision = "postgres-inprocess", middleware.RetryConfig{Publisher: b.publisher}, false, 0
			return b
		}},
		{"nats", func(t *testing.T) broker { return newNATS(t, false, false) }},
		{"nats-trackmsgid", func(t *testing.T) broker { return newNATS(t, true, false) }},
		{"nats-trackmsgid-durable", func(t *testing.T) broker { return newNATS(t, true, true) }},
		{"amqp", newAMQP},
		{"amqp-durable", func(t *testing.T) broker {
			b := newAMQP(t)
			b.name, b.retryTopics, b.precision = "amqp-durable", true, middleware.DefaultDurablePollInterval
			b.retry.Delay, b.retry.Durable = middleware.DelayDurable, newDurable(t, b.publisher)
			return b
		}},
		{"redrive", newRedrive},
	}
	for _, bc := range brokers {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			runRetryScenario(t, bc.make(t))
		})
	}
}
