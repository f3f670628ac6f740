package router_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

const waitTimeout = 15 * time.Second

// fastRetry retries after 10 ms, then 20 ms, and so on.
func fastRetry(maxRetries int) middleware.RetryConfig {
	return middleware.RetryConfig{
		MaxRetries:      maxRetries,
		InitialInterval: 10 * time.Millisecond,
		MaxInterval:     50 * time.Millisecond,
	}
}

func newRouter(t *testing.T, rdb redis.UniversalClient, config router.Config) *router.Router {
	t.Helper()
	config.Client = rdb
	if config.Retry.InitialInterval == 0 {
		config.Retry = fastRetry(config.Retry.MaxRetries)
	}
	r, err := router.New(config, nil)
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// run runs r until the test ends, and waits until it runs.
func run(t *testing.T, r *router.Router) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after its context ended")
		}
	})
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("Run returned at once: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("router did not start")
	}
	return done
}

func publish(t *testing.T, rdb redis.UniversalClient, topic string, msgs ...*message.Message) {
	t.Helper()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// recorder counts handler calls by message UUID.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	msgs  []*message.Message
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}} }

func (r *recorder) record(msg *message.Message) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[msg.UUID]++
	r.msgs = append(r.msgs, msg)
	return r.calls[msg.UUID]
}

func (r *recorder) count(uuid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[uuid]
}

func (r *recorder) last() *message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[len(r.msgs)-1]
}

func poisonEntries(t *testing.T, rdb redis.UniversalClient, stream string) []*message.Message {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("read poison stream %q: %v", stream, err)
	}
	var msgs []*message.Message
	for _, e := range entries {
		msg, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("decode poison entry %s: %v", e.ID, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

func TestTwoHandlersOnOneTopicHaveSeparateGroups(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-groups-")
	r := newRouter(t, rdb, router.Config{})

	billing, shipping := newRecorder(), newRecorder()
	if _, err := r.AddConsumerHandler("billing", topic, func(msg *message.Message) error {
		if billing.record(msg) == 1 {
			return errors.New("billing down")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddConsumerHandler("shipping", topic, func(msg *message.Message) error {
		shipping.record(msg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, r)

	msg := message.NewMessage("order-1", []byte("{}"))
	publish(t, rdb, topic, msg)
	redistest.WaitFor(t, waitTimeout, func() bool { return billing.count("order-1") == 2 }, "billing retried order-1")
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingOf(t, rdb, topic, "billing") == 0 }, "billing settled")

	if n := shipping.count("order-1"); n != 1 {
		t.Errorf("shipping handled order-1 %d times, want 1: the retry belongs to billing's group only", n)
	}
	groups, err := rdb.XInfoGroups(context.Background(), topic).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	if strings.Join(names, ",") != "billing,shipping" {
		t.Errorf("consumer groups of %q = %v, want [billing shipping] (the handler names)", topic, names)
	}
}

// pendingOf is the number of pending entries of group in topic's stream and
// the group's retry stream.
func pendingOf(t *testing.T, rdb redis.UniversalClient, topic, group string) int64 {
	t.Helper()
	keys := redrive.KeysFor(topic)
	var n int64
	for _, stream := range []string{keys.Stream, keys.GroupRetry(group)} {
		p, err := rdb.XPending(context.Background(), stream, group).Result()
		if err != nil {
			t.Fatalf("XPENDING %s %s: %v", stream, group, err)
		}
		n += p.Count
	}
	return n
}

func TestFailingHandlerIsRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-retry-")
	var retries []middleware.RetryEvent
	var mu sync.Mutex
	retry := fastRetry(5)
	retry.OnRetry = func(e middleware.RetryEvent) {
		mu.Lock()
		defer mu.Unlock()
		retries = append(retries, e)
	}
	r := newRouter(t, rdb, router.Config{Retry: retry})

	rec := newRecorder()
	var succeeded atomic.Bool
	if _, err := r.AddConsumerHandler("flaky", topic, func(msg *message.Message) error {
		switch rec.record(msg) {
		case 1:
			return errors.New("first failure")
		case 2:
			panic("second failure is a panic")
		}
		succeeded.Store(true)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, r)

	publish(t, rdb, topic, message.NewMessage("m-1", []byte("x")))
	redistest.WaitFor(t, waitTimeout, succeeded.Load, "the third attempt succeeded")

	if n := rec.count("m-1"); n != 3 {
		t.Errorf("handler ran %d times, want 3", n)
	}
	st, err := middleware.ReadRetryState(rec.last().Metadata)
	if err != nil {
		t.Fatal(err)
	}
	if st.Attempts != 2 || !strings.Contains(st.LastError, "second failure is a panic") {
		t.Errorf("retry state on the last delivery = %d attempts, last error %q; want 2 and the panic", st.Attempts, st.LastError)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retries) != 2 {
		t.Fatalf("OnRetry called %d times, want 2", len(retries))
	}
	for i, e := range retries {
		if e.Topic != topic || e.Handler != "flaky" || e.Attempt != i+1 {
			t.Errorf("retry %d = topic %q handler %q attempt %d", i, e.Topic, e.Handler, e.Attempt)
		}
	}
}

func TestPoisonAfterMaxRetries(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-poison-")
	poisoned := make(chan middleware.PoisonEvent, 1)
	retry := fastRetry(2)
	retry.OnPoison = func(e middleware.PoisonEvent) { poisoned <- e }
	r := newRouter(t, rdb, router.Config{Retry: retry})

	rec := newRecorder()
	if _, err := r.AddConsumerHandler("always-fails", topic, func(msg *message.Message) error {
		rec.record(msg)
		return errors.New("boom")
	}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	publish(t, rdb, topic, message.NewMessage("bad-1", []byte("x")))

	var e middleware.PoisonEvent
	select {
	case e = <-poisoned:
	case <-time.After(waitTimeout):
		t.Fatal("message not poisoned")
	}
	if e.Attempts != 3 || rec.count("bad-1") != 3 {
		t.Errorf("poisoned after %d attempts, handler ran %d times; want 3 and 3", e.Attempts, rec.count("bad-1"))
	}
	entries := poisonEntries(t, rdb, redrive.KeysFor(topic).Poison)
	if len(entries) != 1 {
		t.Fatalf("%d entries in the topic's poison stream, want 1", len(entries))
	}
	md := entries[0].Metadata
	if entries[0].UUID != "bad-1" ||
		!strings.HasPrefix(md.Get(wmiddleware.ReasonForPoisonedKey), middleware.ReasonMaxRetries) ||
		md.Get(wmiddleware.PoisonedTopicKey) != topic ||
		md.Get(wmiddleware.PoisonedHandlerKey) != "always-fails" {
		t.Errorf("poison entry = %s %v", entries[0].UUID, md)
	}
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingOf(t, rdb, topic, "always-fails") == 0 }, "nothing left pending")
}

func TestRetryPolicyOverriddenPerHandler(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-override-")
	sharedPoison := redistest.RandomTopic("router-override-poison-")
	t.Cleanup(func() { rdb.Del(context.Background(), sharedPoison) })

	var mu sync.Mutex
	attempts := map[string]int{}
	onPoison := func(e middleware.PoisonEvent) {
		mu.Lock()
		defer mu.Unlock()
		attempts[e.Handler] = e.Attempts
	}
	def := fastRetry(3)
	def.OnPoison = onPoison
	r := newRouter(t, rdb, router.Config{Retry: def})

	strict := middleware.RetryConfig{MaxRetries: middleware.NoRetries, PoisonTopic: sharedPoison, OnPoison: onPoison}
	fail := func(*message.Message) error { return errors.New("no") }
	if _, err := r.AddConsumerHandler("default-policy", topic, fail); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddConsumerHandler("strict-policy", topic, fail,
		router.WithRetry(strict), router.WithConsumerGroup("strict-group")); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	publish(t, rdb, topic, message.NewMessage("m", nil))

	redistest.WaitFor(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == 2
	}, "both handlers poisoned the message")
	mu.Lock()
	if attempts["default-policy"] != 4 || attempts["strict-policy"] != 1 {
		t.Errorf("poisoned after %v attempts, want default-policy 4 and strict-policy 1", attempts)
	}
	mu.Unlock()
	if n := len(poisonEntries(t, rdb, sharedPoison)); n != 1 {
		t.Errorf("%d entries in the override's poison topic, want 1", n)
	}
	if n := len(poisonEntries(t, rdb, redrive.KeysFor(topic).Poison)); n != 1 {
		t.Errorf("%d entries in the topic's poison stream, want 1", n)
	}
	if _, err := rdb.XInfoGroups(context.Background(), topic).Result(); err != nil {
		t.Fatal(err)
	}
	if pendingOf(t, rdb, topic, "strict-group") != 0 {
		t.Error("WithConsumerGroup's group has pending entries")
	}
}

func TestComposesWithAnExistingRouter(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-compose-")
	out := redistest.RandomTopic("router-compose-out-")
	t.Cleanup(func() { rdb.Del(context.Background(), out) })

	wr, err := message.NewRouter(message.RouterConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A handler on another broker, in the same Watermill router.
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	var fromGoChannel atomic.Int32
	wr.AddConsumerHandler("gochannel-handler", "local", gc, func(*message.Message) error {
		fromGoChannel.Add(1)
		return nil
	})
	var routerLevel atomic.Int32
	wr.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			routerLevel.Add(1)
			return h(msg)
		}
	})

	var order []string
	var orderMu sync.Mutex
	trace := func(name string) message.HandlerMiddleware {
		return func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				orderMu.Lock()
				order = append(order, name)
				orderMu.Unlock()
				return h(msg)
			}
		}
	}
	r := newRouter(t, rdb, router.Config{Router: wr, Middleware: []message.HandlerMiddleware{trace("config")}})
	if r.Router() != wr {
		t.Fatal("Router() is not the router given in Config")
	}
	var forwarded atomic.Int32
	if _, err := r.AddHandler("forward", topic, out, func(msg *message.Message) ([]*message.Message, error) {
		forwarded.Add(1)
		return []*message.Message{message.NewMessage("out-"+msg.UUID, msg.Payload)}, nil
	}, router.WithMiddleware(trace("option"))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddConsumerHandler("forward", topic, func(*message.Message) error { return nil }); err == nil {
		t.Error("a second handler named forward was accepted")
	}
	run(t, r)

	publish(t, rdb, topic, message.NewMessage("a", []byte("payload")))
	if err := gc.Publish("local", message.NewMessage("b", nil)); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, _ := rdb.XLen(context.Background(), out).Result()
		return n == 1 && fromGoChannel.Load() == 1
	}, "the redrive handler published to %s and the gochannel handler ran", out)
	if routerLevel.Load() != 2 {
		t.Errorf("router-level middleware ran %d times, want 2 (both handlers)", routerLevel.Load())
	}
	orderMu.Lock()
	if strings.Join(order, ",") != "config,option" {
		t.Errorf("middleware ran in order %v, want config then option", order)
	}
	orderMu.Unlock()

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !wr.IsClosed() {
		t.Error("Close did not close the Watermill router")
	}
}

func TestCloseStopsEverythingAndKeepsTheClient(t *testing.T) {
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-close-")
	before := runtime.NumGoroutine()

	r, err := router.New(router.Config{Client: rdb, Retry: fastRetry(3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	for _, name := range []string{"one", "two"} {
		if _, err := r.AddConsumerHandler(name, topic, func(*message.Message) error {
			handled.Add(1)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	publish(t, rdb, topic, message.NewMessage("x", nil))
	redistest.WaitFor(t, waitTimeout, func() bool { return handled.Load() == 2 }, "both handlers ran")

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after Close")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the client is unusable after Close: %v", err)
	}
	if _, err := r.AddConsumerHandler("late", topic, func(*message.Message) error { return nil }); !errors.Is(err, router.ErrClosed) {
		t.Errorf("AddConsumerHandler after Close = %v, want ErrClosed", err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, router.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	// Every goroutine the router, its subscribers (readers, ackers, movers,
	// claimers) and its publisher started has ended.
	redistest.WaitFor(t, waitTimeout, func() bool { return runtime.NumGoroutine() <= before }, "goroutines back to %d", before)
}

func TestRunEndsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	r := newRouter(t, rdb, router.Config{})
	if _, err := r.AddConsumerHandler("h", redistest.RandomTopic("router-ctx-"), func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after its context ended")
	}
	if !r.Router().IsClosed() {
		t.Error("the Watermill router is not closed")
	}
}

func TestCloseWithoutRun(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	r, err := router.New(router.Config{Client: rdb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddConsumerHandler("h", "never-read", func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close of a router that never ran took %s", d)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer rdb.Close()
	cases := []struct {
		config router.Config
		want   string
	}{
		{router.Config{}, "Config.Client"},
		{router.Config{Client: rdb, Retry: middleware.RetryConfig{Multiplier: 0.5}}, "Config.Retry: redrive/middleware: RetryConfig.Multiplier"},
		{router.Config{Client: rdb, Subscriber: redrive.SubscriberConfig{MaxInFlight: -1}}, "Config.Subscriber: redrive: SubscriberConfig.MaxInFlight"},
		{router.Config{Client: rdb, Middleware: []message.HandlerMiddleware{nil}}, "Config.Middleware[0]"},
	}
	for _, c := range cases {
		_, err := router.New(c.config, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", c.config, err, c.want)
		}
	}

	r, err := router.New(router.Config{Client: rdb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	noop := func(*message.Message) error { return nil }
	handlerCases := []struct {
		add  func() error
		want string
	}{
		{func() error { _, err := r.AddConsumerHandler("", "t", noop); return err }, "name is empty"},
		{func() error { _, err := r.AddConsumerHandler("h", "", noop); return err }, "subscribeTopic is empty"},
		{func() error { _, err := r.AddConsumerHandler("h", "t", nil); return err }, "handlerFunc is nil"},
		{func() error { _, err := r.AddHandler("h", "t", "", message.PassthroughHandler); return err }, "publishTopic is empty"},
		{func() error {
			_, err := r.AddConsumerHandler("h", "t", noop, router.WithConsumerGroup(""))
			return err
		}, "WithConsumerGroup is empty"},
		{func() error {
			_, err := r.AddConsumerHandler("h", "t", noop, router.WithRetry(middleware.RetryConfig{MaxRetries: -5}))
			return err
		}, `handler "h": retry policy: redrive/middleware: RetryConfig.MaxRetries`},
		{func() error {
			_, err := r.AddConsumerHandler("h", "t", noop, router.WithSubscriberConfig(redrive.SubscriberConfig{ReadBatchSize: -1}))
			return err
		}, `handler "h": subscriber: redrive: SubscriberConfig.ReadBatchSize`},
	}
	for i, c := range handlerCases {
		if err := c.add(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want an error containing %q", i, err, c.want)
		}
	}
}
