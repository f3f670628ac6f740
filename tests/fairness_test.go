package tests

import (
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// handledCounts counts, per consumer and per message, what was handled.
type handledCounts struct {
	mu         sync.Mutex
	byConsumer map[string]int
	byUUID     map[string]int
}

func newHandledCounts() *handledCounts {
	return &handledCounts{byConsumer: map[string]int{}, byUUID: map[string]int{}}
}

func (h *handledCounts) add(consumer string, m *message.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.byConsumer[consumer]++
	h.byUUID[m.UUID]++
}

func (h *handledCounts) unique() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUUID)
}

func (h *handledCounts) of(consumer string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byConsumer[consumer]
}

// handledTwice lists the messages handled more than once.
func (h *handledCounts) handledTwice() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var twice []string
	for id, n := range h.byUUID {
		if n > 1 {
			twice = append(twice, id)
		}
	}
	return twice
}

// consume handles every message of msgs as consumer, taking handle per
// message, and acks it.
func (h *handledCounts) consume(consumer string, msgs <-chan *message.Message, handle time.Duration) {
	for m := range msgs {
		if handle > 0 {
			time.Sleep(handle)
		}
		h.add(consumer, m)
		m.Ack()
	}
}

// TestSlowConsumerHoldsOnlyItsShare: ten consumers of one group, one of them
// with a handler that takes 100 ms. Every message is handled exactly once,
// and the slow consumer handles no more than its share plus the read-ahead
// bound: it does not hold entries the fast consumers could run.
func TestSlowConsumerHoldsOnlyItsShare(t *testing.T) {
	t.Parallel()
	const (
		consumers = 10
		messages  = 2000
		readAhead = 16
		group     = "g"
	)
	client, topic, pub := newGroupTopic(t, "fair-")

	counts := newHandledCounts()
	var wg sync.WaitGroup
	for i := range consumers {
		sub := newSubscriber(t, redrive.SubscriberConfig{
			Client: redistest.NewClient(t), ConsumerGroup: group, Consumer: consumerName(i),
			ReadAhead: readAhead,
		}, nil)
		msgs := subscribe(t, sub, topic)
		handle := time.Duration(0)
		if i == 0 {
			handle = 100 * time.Millisecond
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts.consume(consumerName(i), msgs, handle)
		}()
		t.Cleanup(func() { _ = sub.Close() })
	}
	start := time.Now()
	publish(t, pub, topic, newMessages("m", messages)...)
	redistest.WaitFor(t, 2*waitTimeout, func() bool {
		return counts.unique() == messages && pendingCount(t, client, topic, group) == 0
	}, "every message handled and acked")
	t.Logf("%d messages handled in %s; slow consumer handled %d", messages, time.Since(start), counts.of(consumerName(0)))

	if twice := counts.handledTwice(); len(twice) > 0 {
		t.Errorf("%d messages handled more than once: %v", len(twice), twice)
	}
	if slow, bound := counts.of(consumerName(0)), messages/consumers+readAhead; slow > bound {
		t.Errorf("the slow consumer handled %d messages, more than its share plus the read-ahead bound (%d)", slow, bound)
	}
}

func consumerName(i int) string { return "consumer-" + string(rune('a'+i)) }

// newGroupTopic gives a test a client, a fresh topic deleted after it, and a
// publisher.
func newGroupTopic(t *testing.T, prefix string) (*redis.Client, string, *redrive.Publisher) {
	t.Helper()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic(prefix)
	deleteKeysAfter(t, client, topic)
	return client, topic, newPublisher(t, client)
}

// stopReadingAfterOne makes msgs' subscriber take one message (acked), then
// publishes more and waits until the subscriber, its reader no longer taking
// anything, read some of them ahead. It returns the messages published after
// the first.
func stopReadingAfterOne(t *testing.T, client *redis.Client, pub *redrive.Publisher, msgs <-chan *message.Message, topic, group string) []*message.Message {
	t.Helper()
	publish(t, pub, topic, newMessages("first", 1)...)
	receiveN(t, msgs, 1)[0].Ack()
	published := newMessages("m", 20)
	publish(t, pub, topic, published...)
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) > 0 },
		"the subscriber read entries ahead")
	return published
}

// TestStoppedReaderGivesBackEntries: a consumer whose reader stops taking
// messages (without closing) gives the entries waiting in it back to the
// group within about MaxIdleTime, and another consumer finishes them.
func TestStoppedReaderGivesBackEntries(t *testing.T) {
	t.Parallel()
	const group = "g"
	client, topic, pub := newGroupTopic(t, "stopped-reader-")
	config := redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group,
		MaxIdleTime:   2 * time.Second,
		ClaimInterval: 200 * time.Millisecond,
	}

	config.Consumer = "stopped"
	stopped := newSubscriber(t, config, nil)
	stoppedMsgs := subscribe(t, stopped, topic)
	published := stopReadingAfterOne(t, client, pub, stoppedMsgs, topic, group)

	config.Consumer = "live"
	live := collect(subscribe(t, newSubscriber(t, config, nil), topic))
	live.waitUnique(t, len(published))
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "every entry acked")
	sameSet(t, "handled by the live consumer", live.ids(), uuids(published))
	if n := len(live.deliveries()); n != len(published) {
		t.Errorf("the live consumer handled %d deliveries of %d messages", n, len(published))
	}
	select {
	case m := <-stoppedMsgs:
		t.Errorf("the stopped consumer still hands out %s, given back to the group", m.UUID)
	default:
	}
}

// TestCloseWithUnackedMessagesIsPrompt is the shape of Watermill's
// multiplier: fifty subscribers with default settings, each with a message
// handed out that nobody will ever ack, closed one after the other. Close
// does not wait for those messages: each returns while its message's context
// is still alive (it would be cancelled had Close waited out CloseTimeout).
func TestCloseWithUnackedMessagesIsPrompt(t *testing.T) {
	t.Parallel()
	const (
		subscribers = 50
		group       = "g"
	)
	client := redistest.NewClient(t)
	pub := newPublisher(t, client)

	subs := make([]*redrive.Subscriber, subscribers)
	held := make([]*message.Message, subscribers)
	for i := range subs {
		// A topic each, so every subscriber gets exactly its own message.
		topic := redistest.RandomTopic("close-prompt-")
		deleteKeysAfter(t, client, topic)
		// A client each, as fifty subscriptions polling on one client's
		// pool would mostly wait for connections.
		subs[i] = newSubscriber(t, redrive.SubscriberConfig{Client: redistest.NewClient(t), ConsumerGroup: group}, nil)
		msgs := subscribe(t, subs[i], topic)
		publish(t, pub, topic, newMessages("m", 1)...)
		held[i] = receiveN(t, msgs, 1)[0]
	}
	start := time.Now()
	for i, sub := range subs {
		if err := sub.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i, err)
		}
		if err := held[i].Context().Err(); err != nil {
			t.Fatalf("Close #%d waited for its unacked message until CloseTimeout (context: %v)", i, err)
		}
	}
	t.Logf("closed %d subscribers in %s", subscribers, time.Since(start))
}

// TestCloseGivesQueuedEntriesBack: what a closing subscriber read ahead but
// never handed out goes back to the group at Close, so a live consumer (with
// a random name) takes it at its next claim pass, long before MaxIdleTime.
func TestCloseGivesQueuedEntriesBack(t *testing.T) {
	t.Parallel()
	const group = "g"
	client, topic, pub := newGroupTopic(t, "close-give-back-")
	config := redrive.SubscriberConfig{Client: client, ConsumerGroup: group, MaxIdleTime: time.Hour}

	closing := newSubscriber(t, config, nil)
	published := stopReadingAfterOne(t, client, pub, subscribe(t, closing, topic), topic, group)
	if err := closing.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	config.ClaimInterval = 200 * time.Millisecond
	live := collect(subscribe(t, newSubscriber(t, config, nil), topic))
	live.waitUnique(t, len(published))
	sameSet(t, "handled by the live consumer", live.ids(), uuids(published))
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "every entry acked")
}
