package admin

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// handled records, per handler, how many times each message was handled
// successfully and the metadata it last had.
type handled struct {
	mu    sync.Mutex
	count map[string]map[string]int
	meta  map[string]message.Metadata
}

func (h *handled) add(handler string, msg *message.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count[handler] == nil {
		h.count[handler] = map[string]int{}
	}
	h.count[handler][msg.UUID]++
	md := message.Metadata{}
	for k, v := range msg.Metadata {
		md[k] = v
	}
	h.meta[handler+"/"+msg.UUID] = md
}

func (h *handled) times(handler, uuid string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count[handler][uuid]
}

func (h *handled) all(handler string, uuids []string) bool {
	for _, u := range uuids {
		if h.times(handler, u) == 0 {
			return false
		}
	}
	return true
}

// Messages poisoned by the retry middleware from two topics are requeued,
// while the consumers keep running and new messages keep arriving, each to
// the group whose handler failed: that group handles each exactly once more,
// and the other group of the same topic does not see them again.
func TestRequeueTwoTopicsWithRunningConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	topicA := redistest.RandomTopic("admin-it-a-")
	topicB := redistest.RandomTopic("admin-it-b-")
	poisonTopic := redistest.RandomTopic("admin-it-poison-")

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	retry, err := middleware.NewRetry(middleware.RetryConfig{Publisher: pub, PoisonTopic: poisonTopic, MaxRetries: middleware.NoRetries}, nil)
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retry.Middleware)

	var broken atomic.Bool
	broken.Store(true)
	h := &handled{count: map[string]map[string]int{}, meta: map[string]message.Metadata{}}
	handler := func(name string, failing bool) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if failing && broken.Load() && strings.HasPrefix(string(msg.Payload), "fail") {
				return errors.New("downstream unavailable")
			}
			h.add(name, msg)
			return nil
		}
	}
	for _, hd := range []struct {
		name, topic string
		failing     bool
	}{{"billing", topicA, true}, {"audit", topicA, false}, {"shipping", topicB, true}} {
		sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client, ConsumerGroup: hd.name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		router.AddConsumerHandler(hd.name, hd.topic, sub, handler(hd.name, hd.failing))
	}
	runCtx, stop := context.WithCancel(ctx)
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-routerDone; err != nil {
			t.Errorf("router: %v", err)
		}
	}()
	<-router.Running()

	const n = 20
	publish := func(topic, payload string) string {
		m := message.NewMessage(watermill.NewUUID(), []byte(payload))
		if err := pub.Publish(topic, m); err != nil {
			t.Errorf("publish: %v", err)
		}
		return m.UUID
	}
	var failA, failB []string
	for i := range n {
		failA = append(failA, publish(topicA, "fail "+strconv.Itoa(i)))
		failB = append(failB, publish(topicB, "fail "+strconv.Itoa(i)))
	}
	redistest.WaitFor(t, waitTimeout, func() bool { return xlen(t, client, poisonTopic) == 2*n }, "all %d failing messages to be poisoned", 2*n)
	redistest.WaitFor(t, waitTimeout, func() bool { return h.all("audit", failA) }, "audit to handle every message of topic A")

	a := newTestAdmin(t, client, 7)
	list, err := a.ListPoisoned(ctx, poisonTopic, ListPoisonedOptions{Filter: Selector{OriginalTopic: topicA}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Messages) != n || list.Messages[0].Handler != "billing" || list.Messages[0].Attempts != 1 || list.Messages[0].LastError != "downstream unavailable" {
		t.Fatalf("poisoned from topic A: %d, first %+v", len(list.Messages), list.Messages[0])
	}

	// Fixed; new traffic keeps flowing while the requeue runs.
	broken.Store(false)
	var okA []string
	var trafficWG sync.WaitGroup
	trafficWG.Add(1)
	go func() {
		defer trafficWG.Done()
		for i := range 30 {
			okA = append(okA, publish(topicA, "ok "+strconv.Itoa(i)))
		}
	}()
	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{})
	if err != nil {
		t.Fatalf("requeue: %v", err)
	}
	trafficWG.Wait()
	if res.Requeued != 2*n || res.Skipped+res.Gone+res.Failed != 0 {
		t.Fatalf("requeue = requeued %d, skipped %d, gone %d, failed %d", res.Requeued, res.Skipped, res.Gone, res.Failed)
	}
	for _, o := range res.Messages {
		want := "billing"
		if o.OriginalTopic == topicB {
			want = "shipping"
		}
		if o.Group != want || o.Target != redrive.KeysFor(o.OriginalTopic).GroupRetry(want) {
			t.Errorf("outcome %+v, want group %s", o, want)
		}
	}

	redistest.WaitFor(t, waitTimeout, func() bool { return h.all("billing", failA) && h.all("shipping", failB) },
		"billing and shipping to handle every requeued message")
	redistest.WaitFor(t, waitTimeout, func() bool { return h.all("audit", okA) && h.all("billing", okA) }, "the new traffic to be handled")
	if n := xlen(t, client, poisonTopic); n != 0 {
		t.Errorf("poison topic keeps %d messages", n)
	}
	// Requeued messages went to private retry streams, not to the topics.
	if got := xlen(t, client, topicA); got != int64(n+len(okA)) {
		t.Errorf("topic A has %d entries, want the %d published", got, n+len(okA))
	}
	for _, u := range failA {
		if c := h.times("billing", u); c != 1 {
			t.Errorf("billing handled %s %d times, want once", u, c)
		}
		if c := h.times("audit", u); c != 1 {
			t.Errorf("audit handled %s %d times, want once: a requeue for billing must not reach audit", u, c)
		}
	}
	for _, u := range failB {
		if c := h.times("shipping", u); c != 1 {
			t.Errorf("shipping handled %s %d times, want once", u, c)
		}
	}
	// The handler saw a fresh retry state with the history kept.
	h.mu.Lock()
	md := h.meta["billing/"+failA[0]]
	h.mu.Unlock()
	if md.Get(middleware.MetadataAttempts) != "" || md.Get(wmiddleware.ReasonForPoisonedKey) != "" ||
		md.Get(MetadataRequeueCount) != "1" || !strings.Contains(md.Get(middleware.MetadataHistory), "downstream unavailable") {
		t.Errorf("requeued message metadata = %v", md)
	}
	// Every retry stream is drained: the subscriber deletes handled retries.
	for _, g := range []struct{ topic, group string }{{topicA, "billing"}, {topicB, "shipping"}} {
		stream := redrive.KeysFor(g.topic).GroupRetry(g.group)
		redistest.WaitFor(t, waitTimeout, func() bool { return xlen(t, client, stream) == 0 }, "%s to drain", stream)
	}
}
