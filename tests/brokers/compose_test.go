package brokers_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/fanin"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// composeEnv is a redrive topic, its poison topic and a router whose
// handlers retry with redrive's middleware, for checking it beside one
// Watermill middleware or component at a time.
type composeEnv struct {
	t      *testing.T
	client *redis.Client
	pub    *redrive.Publisher
	topic  string
	poison string
	router *message.Router
	rec    *recorder
}

func newComposeEnv(t *testing.T) *composeEnv {
	t.Helper()
	client := redistest.NewClient(t)
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, pub)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	e := &composeEnv{t: t, client: client, pub: pub, topic: randomName("compose"), poison: randomName("composepoison"), router: router, rec: newRecorder()}
	t.Cleanup(func() {
		keys := redrive.KeysFor(e.topic)
		client.Del(context.Background(), e.topic, e.poison, keys.Delayed, keys.Poison, keys.PoisonTopics())
	})
	return e
}

// retry returns the redrive retry middleware: 20 ms backoff, maxRetries.
func (e *composeEnv) retry(maxRetries int) message.HandlerMiddleware {
	r, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher: e.pub, PoisonTopic: e.poison, MaxRetries: maxRetries,
		InitialInterval: 20 * time.Millisecond, MaxInterval: 100 * time.Millisecond,
	}, watermill.NopLogger{})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Middleware
}

// add adds handler name (its own consumer group) on the topic, wrapped in
// chain, first outermost.
func (e *composeEnv) add(name string, h message.NoPublishHandlerFunc, chain ...message.HandlerMiddleware) {
	sub := newRedriveSubscriber(e.t, e.client, name)
	e.router.AddConsumerHandler(name, e.topic, sub, h).AddMiddleware(chain...)
}

// failing returns a handler recording under name that fails its first n
// runs on each message.
func (e *composeEnv) failing(name string, n int) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		if run := e.rec.record(name, msg); run <= n {
			return fmt.Errorf("run %d: %w", run, errScenario)
		}
		return nil
	}
}

func (e *composeEnv) start(payloads ...string) {
	startRouter(e.t, e.router)
	publish(e.t, e.pub, e.topic, payloads)
}

func (e *composeEnv) poisoned() int64 { return e.client.XLen(context.Background(), e.poison).Val() }

func (e *composeEnv) runs(name, payload string) int { return len(e.rec.of(name, payload)) }

// settle waits for cond, then watches quietPeriod for anything more.
func (e *composeEnv) settle(what string, cond func() bool) {
	e.t.Helper()
	waitFor(e.t, what, cond)
	time.Sleep(quietPeriod)
}

// checkEachOnce waits until name recorded every payload, then checks that
// it recorded each exactly once.
func (e *composeEnv) checkEachOnce(name string, payloads []string) {
	e.t.Helper()
	e.settle("every message handled by "+name, func() bool {
		for _, p := range payloads {
			if e.runs(name, p) < 1 {
				return false
			}
		}
		return true
	})
	for _, p := range payloads {
		if n := e.runs(name, p); n != 1 {
			e.t.Errorf("%s recorded %s %d times, want once", name, p, n)
		}
	}
}

func TestComposePoisonQueue(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	wmPoison := randomName("wmpoison")
	t.Cleanup(func() { e.client.Del(context.Background(), wmPoison) })
	pq, err := wmiddleware.PoisonQueue(e.pub, wmPoison)
	if err != nil {
		t.Fatal(err)
	}
	// Outside: it sees only failures to reach Redis, so redrive retries and
	// poisons. Inside: it swallows every error, so nothing is retried.
	e.add("outside", e.failing("outside", 100), pq, e.retry(2))
	e.add("inside", e.failing("inside", 100), e.retry(2), pq)
	e.start("m")
	e.settle("both handlers done", func() bool { return e.runs("outside", "m") == 3 && e.poisoned() == 1 && e.runs("inside", "m") == 1 })
	if e.runs("outside", "m") != 3 || e.poisoned() != 1 {
		t.Errorf("PoisonQueue outside: %d runs, %d redrive poison entries; want 3 and 1", e.runs("outside", "m"), e.poisoned())
	}
	if n := e.client.XLen(context.Background(), wmPoison).Val(); n != 1 || e.runs("inside", "m") != 1 {
		t.Errorf("PoisonQueue inside: %d runs, %d in its poison topic; want 1 and 1 (it takes every error before a retry)", e.runs("inside", "m"), n)
	}
}

func TestComposeWatermillRetry(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	wmRetry := wmiddleware.Retry{MaxRetries: 1, InitialInterval: time.Millisecond}
	e.add("wmoutside", e.failing("wmoutside", 100), wmRetry.Middleware, e.retry(2))
	e.add("wminside", e.failing("wminside", 100), e.retry(2), wmRetry.Middleware)
	e.start("m")
	e.settle("both poisoned", func() bool { return e.poisoned() == 2 })
	if n := e.runs("wmoutside", "m"); n != 3 {
		t.Errorf("Watermill Retry outside: %d runs, want 3 (it sees no error)", n)
	}
	if n := e.runs("wminside", "m"); n != 6 {
		t.Errorf("Watermill Retry inside: %d runs, want 6 ((1+1) in process × (1+2) redrive attempts)", n)
	}
}

func TestComposeDelayOnError(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	doe := &wmiddleware.DelayOnError{InitialInterval: time.Hour, MaxInterval: time.Hour, Multiplier: 2}
	e.add("doe", e.failing("doe", 100), e.retry(1), doe.Middleware)
	e.start("m")
	e.settle("poisoned", func() bool { return e.poisoned() == 1 })
	if n := e.runs("doe", "m"); n != 2 {
		t.Errorf("DelayOnError inside: %d runs, want 2: redrive's backoff governs, not its hour", n)
	}
	entries := e.client.XRange(context.Background(), e.poison, "-", "+").Val()
	msg, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(entries[0].Values)
	if err != nil {
		t.Fatal(err)
	}
	for k := range msg.Metadata {
		if len(k) > 18 && k[:18] == "_watermill_delayed" {
			t.Errorf("the poisoned message carries %s", k)
		}
	}
}

func TestComposeIgnoreErrors(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	ignored := errors.New("ignored")
	ie := wmiddleware.NewIgnoreErrors([]error{ignored})
	e.add("ignore", func(msg *message.Message) error { e.rec.record("ignore", msg); return ignored }, e.retry(2), ie.Middleware)
	e.add("marker", e.failing("marker", 0))
	e.start("m")
	e.settle("handled", func() bool { return e.runs("ignore", "m") >= 1 && e.runs("marker", "m") == 1 })
	if n := e.runs("ignore", "m"); n != 1 || e.poisoned() != 0 {
		t.Errorf("IgnoreErrors inside: %d runs and %d poisoned, want 1 and 0", n, e.poisoned())
	}
}

func TestComposeRandomFailAndPanic(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	e.add("random", e.failing("random", 0), e.retry(30), wmiddleware.Recoverer, wmiddleware.RandomPanic(0.3), wmiddleware.RandomFail(0.3))
	payloads := make([]string, 20)
	for i := range payloads {
		payloads[i] = fmt.Sprint(i)
	}
	e.start(payloads...)
	e.checkEachOnce("random", payloads)
	if e.poisoned() != 0 {
		t.Errorf("%d messages poisoned, want none with 30 retries", e.poisoned())
	}
}

func TestComposeCircuitBreaker(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	cb := wmiddleware.NewCircuitBreaker(gobreaker.Settings{
		Name:        "compose",
		Timeout:     200 * time.Millisecond,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	})
	var calls atomic.Int32
	var opened atomic.Bool
	e.add("breaker", func(msg *message.Message) error {
		if calls.Add(1) <= 5 {
			return errScenario // the downstream is down for five calls
		}
		e.rec.record("breaker", msg)
		return nil
	}, e.retry(30), wmiddleware.Recoverer, func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := cb.Middleware(h)(msg)
			if errors.Is(err, gobreaker.ErrOpenState) {
				opened.Store(true)
			}
			return out, err
		}
	})
	payloads := []string{"a", "b", "c", "d", "e"}
	e.start(payloads...)
	e.checkEachOnce("breaker", payloads)
	if !opened.Load() {
		t.Error("the breaker never opened")
	}
	if e.poisoned() != 0 {
		t.Errorf("%d poisoned while the breaker was open, want none", e.poisoned())
	}
}

func TestComposeCorrelationID(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	var mu sync.Mutex
	var ids []string
	e.add("corr", func(msg *message.Message) error {
		mu.Lock()
		ids = append(ids, wmiddleware.MessageCorrelationID(msg))
		mu.Unlock()
		return e.failing("corr", 1)(msg)
	}, wmiddleware.CorrelationID, e.retry(2))
	startRouter(t, e.router)
	msg := message.NewMessage(watermill.NewUUID(), []byte("m"))
	wmiddleware.SetCorrelationID("corr-1", msg)
	if err := e.pub.Publish(e.topic, msg); err != nil {
		t.Fatal(err)
	}
	e.settle("retried", func() bool { return e.runs("corr", "m") == 2 })
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(ids) != "[corr-1 corr-1]" {
		t.Errorf("correlation IDs per attempt %v, want corr-1 on both", ids)
	}
}

// TestComposeWatermillMetrics adds Watermill's Prometheus router metrics
// after the retry middleware (so inside it): each failed attempt counts as
// success="false".
func TestComposeWatermillMetrics(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	reg := prometheus.NewRegistry()
	e.router.AddMiddleware(e.retry(2))
	wmetrics.NewPrometheusMetricsBuilder(reg, "compose", "").AddPrometheusRouterMetrics(e.router)
	e.router.AddConsumerHandler("metered", e.topic, newRedriveSubscriber(t, e.client, "metered"), e.failing("metered", 1))
	e.start("m")
	e.settle("retried", func() bool { return e.runs("metered", "m") == 2 })
	got := map[string]uint64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "compose_handler_execution_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "success" {
					got[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if got["false"] != 1 || got["true"] != 1 {
		t.Errorf("handler executions by success: %v, want 1 false and 1 true", got)
	}
	// Through the metrics' subscriber decorator the message is still a
	// redrive delivery: its retry went through the group's retry stream.
	if e.client.Exists(context.Background(), redrive.KeysFor(e.topic).GroupRetry("metered")).Val() != 1 {
		t.Error("the retry did not go through the group's retry stream")
	}
}

// TestComposeCQRS runs two cqrs event handlers on one event, each with its
// own redrive subscriber (SubscriberConstructor, group = handler name): the
// one that fails is retried alone.
func TestComposeCQRS(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	type OrderPlaced struct{ ID string }
	e.router.AddMiddleware(e.retry(2), wmiddleware.Recoverer)
	proc, err := cqrs.NewEventProcessorWithConfig(e.router, cqrs.EventProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) { return e.topic, nil },
		SubscriberConstructor: func(p cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return newRedriveSubscriber(t, e.client, p.HandlerName), nil
		},
		Marshaler: cqrs.JSONMarshaler{},
	})
	if err != nil {
		t.Fatal(err)
	}
	var billing, shipping atomic.Int32
	err = proc.AddHandlers(
		cqrs.NewEventHandler("billing", func(_ context.Context, ev *OrderPlaced) error {
			if billing.Add(1) == 1 {
				return errScenario
			}
			return nil
		}),
		cqrs.NewEventHandler("shipping", func(_ context.Context, ev *OrderPlaced) error {
			shipping.Add(1)
			return nil
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := cqrs.NewEventBusWithConfig(e.pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) { return e.topic, nil },
		Marshaler:            cqrs.JSONMarshaler{},
	})
	if err != nil {
		t.Fatal(err)
	}
	startRouter(t, e.router)
	if err := bus.Publish(context.Background(), &OrderPlaced{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	e.settle("billing retried", func() bool { return billing.Load() == 2 && shipping.Load() == 1 })
	if billing.Load() != 2 || shipping.Load() != 1 {
		t.Errorf("billing ran %d times (want 2), shipping %d (want 1)", billing.Load(), shipping.Load())
	}
}

// TestComposeForwarderAndFanIn puts the retry middleware on the consumer of
// topics fed by components/forwarder and components/fanin: retries stay in
// the consumer's group and neither component sees them.
func TestComposeForwarderAndFanIn(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	outbox, sourceA, sourceB := randomName("outbox"), randomName("srca"), randomName("srcb")
	t.Cleanup(func() { e.client.Del(context.Background(), outbox, sourceA, sourceB) })
	fwd, err := forwarder.NewForwarder(newRedriveSubscriber(t, e.client, "forwarder"), e.pub, watermill.NopLogger{},
		forwarder.Config{ForwarderTopic: outbox})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := fanin.NewFanIn(newRedriveSubscriber(t, e.client, "fanin"), e.pub, fanin.Config{SourceTopics: []string{sourceA, sourceB}, TargetTopic: e.topic}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface {
		Run(context.Context) error
		Running() chan struct{}
		Close() error
	}{fwd, fi} {
		go func() { _ = c.Run(context.Background()) }()
		<-c.Running()
		t.Cleanup(func() { _ = c.Close() })
	}
	e.add("consumer", e.failing("consumer", 1), e.retry(2))
	startRouter(t, e.router)
	if err := forwarder.NewPublisher(e.pub, forwarder.PublisherConfig{ForwarderTopic: outbox}).Publish(e.topic, message.NewMessage(watermill.NewUUID(), []byte("forwarded"))); err != nil {
		t.Fatal(err)
	}
	publish(t, e.pub, sourceA, []string{"from-a"})
	publish(t, e.pub, sourceB, []string{"from-b"})
	e.settle("all retried once", func() bool {
		return e.runs("consumer", "forwarded") == 2 && e.runs("consumer", "from-a") == 2 && e.runs("consumer", "from-b") == 2
	})
	for _, p := range []string{"forwarded", "from-a", "from-b"} {
		if n := e.runs("consumer", p); n != 2 {
			t.Errorf("%s ran %d times, want 2", p, n)
		}
	}
	for _, topic := range []string{outbox, sourceA, sourceB} {
		if n := e.client.XLen(context.Background(), topic).Val(); n != 1 {
			t.Errorf("topic %s holds %d entries, want 1: a retry went back through a component", topic, n)
		}
	}
}

// TestComposeRequeuer poisons a message in one group while another group
// succeeds, then runs Watermill's components/requeuer set up by
// middleware.NewRequeuer: the message goes back to the failing group only,
// with its retries back, and leaves the poison topic.
func TestComposeRequeuer(t *testing.T) {
	t.Parallel()
	e := newComposeEnv(t)
	var fixed atomic.Bool
	e.add("billing", func(msg *message.Message) error {
		run := e.rec.record("billing", msg)
		if !fixed.Load() || run == 3 {
			return errScenario // fails until fixed, then once more
		}
		return nil
	}, e.retry(1))
	e.add("shipping", e.failing("shipping", 0), e.retry(1))
	e.start("m")
	waitFor(t, "billing poisoned", func() bool { return e.poisoned() == 1 && e.runs("shipping", "m") == 1 })

	fixed.Store(true)
	rq, sub, err := middleware.NewRequeuer(middleware.RequeuerConfig{Client: e.client, Publisher: e.pub, PoisonTopic: e.poison}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rq.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; _ = sub.Close() })

	e.settle("billing succeeds after the requeue", func() bool { return e.runs("billing", "m") == 4 })
	if n := e.runs("billing", "m"); n != 4 {
		t.Errorf("billing ran %d times, want 4 (2 before, then a failure retried, then success)", n)
	}
	if n := e.runs("shipping", "m"); n != 1 {
		t.Errorf("shipping ran %d times, want 1: the requeue reached a group that had succeeded", n)
	}
	if n := e.poisoned(); n != 0 {
		t.Errorf("the poison topic holds %d entries after the requeue, want 0", n)
	}
}
