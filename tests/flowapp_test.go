package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// flowApp is a small application on one topic, used by the cluster, bad
// input and security tests to run every path a message can take through
// redrive with whatever client they are testing: a Router with a redrive
// Subscriber in a consumer group and the retry middleware, and a redrive
// Publisher. What the handler does depends on the payload's prefix:
//
//	flowOK      acked at the first delivery
//	flowFlaky   fails at its first two deliveries, then succeeds
//	flowDoomed  always fails: poisoned after MaxRetries (2) retries
//	flowPerm    fails with a permanent error: poisoned at once
//	flowParked  requeued by the handler itself for an hour (Delivery.Requeue),
//	            so the group's retry set keeps a member
//
// Poisoned messages go to the topic's own poison stream (same slot) unless
// flowOptions.PoisonTopic says otherwise.
type flowApp struct {
	t       *testing.T
	client  redis.UniversalClient
	inspect redis.UniversalClient // the tests' own reads
	topic   string
	keys    redrive.TopicKeys
	group   string
	poison  string
	pub     *redrive.Publisher

	mu      sync.Mutex
	calls   map[string][]int            // UUID -> retry attempts seen at each delivery
	handled map[string]*message.Message // UUID -> the delivery that succeeded
	at      map[string]time.Time        // UUID -> when it succeeded
	sent    map[string]*message.Message // UUID -> as published
	dueAt   map[string]time.Time        // UUID -> earliest allowed delivery
	poisons map[string]*message.Message // UUID -> poison entry, filled by waitPoisoned
}

// Payload prefixes that choose the handler's behaviour.
const (
	flowOK     = "ok:"
	flowFlaky  = "flaky:"
	flowDoomed = "doomed:"
	flowPerm   = "perm:"
	flowParked = "parked:"
)

// flowMaxRetries is the RetryConfig.MaxRetries of every flowApp.
const flowMaxRetries = 2

type flowOptions struct {
	// Group is the consumer group; default "flow".
	Group string
	// PoisonTopic overrides the topic's own poison stream.
	PoisonTopic string
	// Logger receives every component's logs; default errorsOnlyLogger.
	Logger watermill.LoggerAdapter
	// Publisher adjusts the publisher's config.
	Publisher func(*redrive.PublisherConfig)
	// Inspect is the client the checks read Redis with; default the app's.
	Inspect redis.UniversalClient
}

// startFlowApp starts the app; it is closed when the test ends.
func startFlowApp(t *testing.T, client redis.UniversalClient, topic string, opts flowOptions) *flowApp {
	t.Helper()
	if opts.Group == "" {
		opts.Group = "flow"
	}
	if opts.Logger == nil {
		opts.Logger = errorsOnlyLogger{}
	}
	if opts.Inspect == nil {
		opts.Inspect = client
	}
	a := &flowApp{
		t: t, client: client, inspect: opts.Inspect, topic: topic, keys: redrive.KeysFor(topic), group: opts.Group,
		calls: map[string][]int{}, handled: map[string]*message.Message{}, at: map[string]time.Time{},
		sent: map[string]*message.Message{}, dueAt: map[string]time.Time{}, poisons: map[string]*message.Message{},
	}
	a.poison = opts.PoisonTopic
	if a.poison == "" {
		a.poison = a.keys.Poison
	}

	pubConfig := redrive.PublisherConfig{Client: client}
	if opts.Publisher != nil {
		opts.Publisher(&pubConfig)
	}
	pub, err := redrive.NewPublisher(pubConfig, opts.Logger)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	a.pub = pub
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{
		Client:              client,
		ConsumerGroup:       opts.Group,
		ClaimInterval:       500 * time.Millisecond,
		MaxIdleTime:         5 * time.Second,
		CloseTimeout:        2 * time.Second,
		DelayedPollInterval: 50 * time.Millisecond,
	}, opts.Logger)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher:       pub,
		PoisonTopic:     a.poison,
		MaxRetries:      flowMaxRetries,
		InitialInterval: 20 * time.Millisecond,
		MaxInterval:     20 * time.Millisecond,
		Multiplier:      1,
	}, opts.Logger)
	if err != nil {
		t.Fatalf("NewRetry: %v", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, opts.Logger)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	router.AddMiddleware(retry.Middleware)
	router.AddConsumerHandler("flow", topic, sub, a.handle)

	runDone := make(chan error, 1)
	go func() { runDone <- router.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = router.Close()
		if err := <-runDone; err != nil {
			t.Errorf("router: %v", err)
		}
		_ = sub.Close()
		_ = pub.Close()
	})
	select {
	case <-router.Running():
	case err := <-runDone:
		t.Fatalf("router stopped at start: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("router not running")
	}
	return a
}

func (a *flowApp) handle(msg *message.Message) error {
	st, err := middleware.ReadRetryState(msg.Metadata)
	if err != nil {
		return middleware.Permanent(fmt.Errorf("bad retry metadata: %w", err))
	}
	a.mu.Lock()
	a.calls[msg.UUID] = append(a.calls[msg.UUID], st.Attempts)
	a.mu.Unlock()
	switch {
	case bytes.HasPrefix(msg.Payload, []byte(flowFlaky)) && st.Attempts < 2:
		return errors.New("transient failure")
	case bytes.HasPrefix(msg.Payload, []byte(flowDoomed)):
		return errors.New("always failing")
	case bytes.HasPrefix(msg.Payload, []byte(flowPerm)):
		return middleware.Permanent(errors.New("cannot ever work"))
	case bytes.HasPrefix(msg.Payload, []byte(flowParked)):
		d, ok := redrive.DeliveryOf(msg)
		if !ok {
			return errors.New("no redrive delivery in the message context")
		}
		if err := d.Requeue(msg.Context(), msg, time.Now().Add(time.Hour)); err != nil {
			return err
		}
	}
	a.mu.Lock()
	if _, dup := a.handled[msg.UUID]; !dup {
		a.at[msg.UUID] = time.Now()
	}
	a.handled[msg.UUID] = msg
	a.mu.Unlock()
	return nil
}

// newFlowMessage makes a message of a kind with an optional payload tail.
func newFlowMessage(kind string, tail []byte) *message.Message {
	payload := append([]byte(kind), tail...)
	return message.NewMessage(watermill.NewUUID(), payload)
}

// publish publishes msgs (delayed by d when d > 0) and remembers them.
func (a *flowApp) publish(d time.Duration, msgs ...*message.Message) error {
	start := time.Now()
	for _, m := range msgs {
		if d > 0 {
			delay.Message(m, delay.For(d))
		}
	}
	if err := a.pub.Publish(a.topic, msgs...); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range msgs {
		a.sent[m.UUID] = m
		if d > 0 {
			a.dueAt[m.UUID] = start.Add(d)
		}
	}
	return nil
}

// mustPublish is publish failing the test on error.
func (a *flowApp) mustPublish(d time.Duration, msgs ...*message.Message) {
	a.t.Helper()
	if err := a.publish(d, msgs...); err != nil {
		a.t.Fatalf("Publish(%.60q): %v", a.topic, err)
	}
}

// waitHandled waits until every message was handled successfully.
func (a *flowApp) waitHandled(msgs ...*message.Message) {
	a.t.Helper()
	redistest.WaitFor(a.t, waitTimeout, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, m := range msgs {
			if a.handled[m.UUID] == nil {
				return false
			}
		}
		return true
	}, "%d messages handled on %.60q", len(msgs), a.topic)
}

// waitPoisoned waits until the poison stream holds every message, and keeps
// the poison entries for inspection.
func (a *flowApp) waitPoisoned(msgs ...*message.Message) {
	a.t.Helper()
	redistest.WaitFor(a.t, waitTimeout, func() bool {
		entries, err := a.inspect.XRange(context.Background(), a.poison, "-", "+").Result()
		if err != nil {
			return false
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, e := range entries {
			m, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
			if err == nil {
				a.poisons[m.UUID] = m
			}
		}
		for _, m := range msgs {
			if a.poisons[m.UUID] == nil {
				return false
			}
		}
		return true
	}, "%d messages in poison stream %.60q", len(msgs), a.poison)
}

func (a *flowApp) callsOf(uuid string) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.calls[uuid]...)
}

func (a *flowApp) handledMsg(uuid string) *message.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handled[uuid]
}

func (a *flowApp) poisonMsg(uuid string) *message.Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.poisons[uuid]
}

// runAllPaths publishes one message of each kind, one delayed message, and
// checks each took its path: delivered once, retried twice then delivered,
// poisoned after the retries, poisoned at once, delivered not before its
// due time. tail is appended to every payload.
func (a *flowApp) runAllPaths(tail []byte) {
	a.t.Helper()
	ok, flaky := newFlowMessage(flowOK, tail), newFlowMessage(flowFlaky, tail)
	doomed, perm := newFlowMessage(flowDoomed, tail), newFlowMessage(flowPerm, tail)
	delayed := newFlowMessage(flowOK, tail)
	a.mustPublish(0, ok, flaky, doomed, perm)
	a.mustPublish(300*time.Millisecond, delayed)

	a.waitHandled(ok, flaky, delayed)
	a.waitPoisoned(doomed, perm)
	a.checkPaths(ok, flaky, doomed, perm, delayed)
	a.waitSettled()
}

// checkPaths checks what runAllPaths' messages went through.
func (a *flowApp) checkPaths(ok, flaky, doomed, perm, delayed *message.Message) {
	t := a.t
	t.Helper()
	// Delivery is at least once: under load a delivery may come twice (a
	// requeue whose reply timed out, an entry claimed back after
	// MaxIdleTime). What matters is the attempts each message went through.
	for m, want := range map[*message.Message]string{ok: "[0]", flaky: "[0 1 2]", doomed: "[0 1 2]", perm: "[0]", delayed: "[0]"} {
		calls := a.callsOf(m.UUID)
		distinct := slices.Compact(slices.Sorted(slices.Values(calls)))
		if got := fmt.Sprint(distinct); got != want {
			t.Errorf("%.10s message delivered with attempts %v, want %s", m.Payload, calls, want)
		} else if len(calls) > len(distinct) {
			t.Logf("%.10s message delivered more than once: attempts %v", m.Payload, calls)
		}
	}
	for _, m := range []*message.Message{ok, flaky, delayed} {
		got := a.handledMsg(m.UUID)
		if !bytes.Equal(got.Payload, m.Payload) {
			t.Errorf("message %s: payload of %d bytes delivered, %d published", m.UUID, len(got.Payload), len(m.Payload))
		}
	}
	// Due times are kept in milliseconds (sorted-set scores): not early
	// means not in an earlier millisecond.
	a.mu.Lock()
	if at, due := a.at[delayed.UUID], a.dueAt[delayed.UUID]; at.UnixMilli() < due.UnixMilli() {
		t.Errorf("delayed message delivered at %v, before its due time %v", at, due)
	}
	a.mu.Unlock()

	for m, reason := range map[*message.Message]string{doomed: middleware.ReasonMaxRetries, perm: middleware.ReasonPermanent} {
		p := a.poisonMsg(m.UUID)
		if got := p.Metadata.Get("reason_poisoned"); !strings.HasPrefix(got, reason) {
			t.Errorf("poisoned %s with reason %q, want %q...", m.Payload[:min(len(m.Payload), 10)], got, reason)
		}
		if got := p.Metadata.Get("topic_poisoned"); got != a.topic {
			t.Errorf("topic_poisoned %.60q, want %.60q", got, a.topic)
		}
		if !bytes.Equal(p.Payload, m.Payload) {
			t.Errorf("poison entry payload of %d bytes, published %d", len(p.Payload), len(m.Payload))
		}
	}
	if got := a.poisonMsg(doomed.UUID).Metadata.Get(middleware.MetadataAttempts); got != fmt.Sprint(flowMaxRetries+1) {
		t.Errorf("doomed message poisoned after %s attempts, want %d", got, flowMaxRetries+1)
	}
}

// waitSettled waits until the group has nothing pending on the topic or its
// retry stream: every delivery was acked, including retries read from the
// retry stream.
func (a *flowApp) waitSettled() {
	a.t.Helper()
	ctx := context.Background()
	pending := func() string {
		var out []string
		for _, stream := range []string{a.topic, a.keys.GroupRetry(a.group)} {
			p, err := a.inspect.XPending(ctx, stream, a.group).Result()
			if err != nil {
				return err.Error()
			}
			if p.Count > 0 {
				out = append(out, fmt.Sprintf("%d pending on %.60q", p.Count, stream))
			}
		}
		return strings.Join(out, ", ")
	}
	redistest.WaitFor(a.t, waitTimeout, func() bool { return pending() == "" },
		"group %q to settle every delivery", a.group)
}

// checkStreamsDecode checks that every entry of the topic's streams decodes
// with the wire format: whatever was thrown at redrive, no stream holds a
// corrupted entry.
func (a *flowApp) checkStreamsDecode() {
	a.t.Helper()
	ctx := context.Background()
	for _, stream := range []string{a.topic, a.poison, a.keys.GroupRetry(a.group)} {
		entries, err := a.inspect.XRange(ctx, stream, "-", "+").Result()
		if err != nil {
			a.t.Fatalf("XRANGE %.60q: %v", stream, err)
		}
		for _, e := range entries {
			m, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
			if err != nil || m.UUID == "" {
				a.t.Errorf("stream %.60q entry %s does not decode: %v", stream, e.ID, err)
			}
		}
	}
}

// deleteFlowKeys removes every key redrive made for topic, when the test
// ends, from the server (or every master) the client reaches.
func deleteFlowKeys(t *testing.T, client redis.UniversalClient, topic string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, key := range scanKeysContaining(ctx, client, topic) {
			_ = client.Del(ctx, key.key).Err()
		}
	})
}

// foundKey is a key found by scanKeysContaining and the node that holds it.
type foundKey struct {
	key  string
	node string
}

// scanKeysContaining lists the keys whose name contains s, with SCAN on the
// server, or on every master of a cluster.
func scanKeysContaining(ctx context.Context, client redis.UniversalClient, s string) []foundKey {
	pattern := "*" + globEscape(s) + "*"
	var mu sync.Mutex
	var out []foundKey
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, foundKey{key: iter.Val(), node: c.Options().Addr})
			mu.Unlock()
		}
		return iter.Err()
	}
	switch c := client.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		_ = scan(ctx, c)
	}
	return out
}

// globEscape escapes the characters SCAN MATCH patterns give a meaning,
// byte by byte (topics need not be UTF-8).
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
