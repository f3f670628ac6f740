package tests

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// ownClient is a client for one watermill-redisstream component: its Close
// closes the client it was given, which must not break anything else.
func ownClient(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// compatMessages are messages that exercise the wire format: binary
// payloads (NUL, invalid UTF-8), an empty one, non-ASCII and empty metadata
// values, and a message without metadata.
func compatMessages(from string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		payload := []byte(fmt.Sprintf("%s-%d\x00\xff\xfe binary", from, i))
		if i == 1 {
			payload = nil
		}
		m := message.NewMessage(watermill.NewUUID(), payload)
		if i != 2 {
			m.Metadata.Set("from", from)
			m.Metadata.Set("i", fmt.Sprint(i))
			m.Metadata.Set("unicode", "żółw – 亀")
			m.Metadata.Set("empty", "")
		}
		msgs[i] = m
	}
	return msgs
}

// sameMessages fails unless got holds exactly want, with equal payloads and
// metadata.
func sameMessages(t *testing.T, who string, got map[string]*message.Message, want []*message.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s got %d messages, want %d", who, len(got), len(want))
	}
	for _, w := range want {
		g, ok := got[w.UUID]
		if !ok {
			t.Errorf("%s did not get %s", who, w.UUID)
			continue
		}
		if !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("%s: %s payload %q, want %q", who, w.UUID, g.Payload, w.Payload)
		}
		if len(g.Metadata) != len(w.Metadata) {
			t.Errorf("%s: %s metadata %v, want %v", who, w.UUID, g.Metadata, w.Metadata)
			continue
		}
		for k, v := range w.Metadata {
			if gv, ok := g.Metadata[k]; !ok || gv != v {
				t.Errorf("%s: %s metadata %v, want %v", who, w.UUID, g.Metadata, w.Metadata)
				break
			}
		}
	}
}

func newRedisstreamSubscriber(t *testing.T, group string) *redisstream.Subscriber {
	t.Helper()
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        ownClient(t),
		ConsumerGroup: group,
		Consumer:      watermill.NewShortUUID(),
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("redisstream.NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// TestCompatWithRedisstream: on one stream, messages published by
// watermill-redisstream reach redrive and messages published by redrive
// reach watermill-redisstream, payload and metadata intact, and subscribers
// of both adapters can share one consumer group during a migration.
func TestCompatWithRedisstream(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("compat-")
	deleteKeysAfter(t, client, topic)
	ctx := context.Background()

	// One group per adapter, each of which must get everything.
	redriveSub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "redrive"}, nil)
	redriveGot := collect(subscribe(t, redriveSub, topic))
	rsGot := collect(subscribe(t, newRedisstreamSubscriber(t, "redisstream"), topic))

	// One group shared by a subscriber of each adapter: together they must
	// get everything.
	mixedRedrive := collect(subscribe(t, newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "mixed"}, nil), topic))
	mixedRS := collect(subscribe(t, newRedisstreamSubscriber(t, "mixed"), topic))

	rsPub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: ownClient(t)}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("redisstream.NewPublisher: %v", err)
	}
	redrivePub := newPublisher(t, client)

	fromRS := compatMessages("redisstream", 10)
	fromRedrive := compatMessages("redrive", 10)
	var all []*message.Message
	for i := range fromRS {
		// Interleaved, so the stream holds entries of both in turn.
		publish(t, rsPub, topic, fromRS[i])
		publish(t, redrivePub, topic, fromRedrive[i])
		all = append(all, fromRS[i], fromRedrive[i])
	}
	// redisstream's Close closes its client; ours must keep working.
	if err := rsPub.Close(); err != nil {
		t.Fatalf("redisstream publisher Close: %v", err)
	}

	redriveGot.waitUnique(t, len(all))
	rsGot.waitUnique(t, len(all))
	redistest.WaitFor(t, waitTimeout, func() bool { return mixedRedrive.unique()+mixedRS.unique() >= len(all) },
		"the mixed group consumed everything")

	snapshot := func(c *collector) map[string]*message.Message {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := make(map[string]*message.Message, len(c.byUUID))
		for k, v := range c.byUUID {
			out[k] = v
		}
		return out
	}
	sameMessages(t, "redrive subscriber", snapshot(redriveGot), all)
	sameMessages(t, "redisstream subscriber", snapshot(rsGot), all)
	mixed := snapshot(mixedRedrive)
	for k, v := range snapshot(mixedRS) {
		mixed[k] = v
	}
	sameMessages(t, "mixed group", mixed, all)

	for _, group := range []string{"redrive", "redisstream", "mixed"} {
		redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 },
			"group %s acked everything", group)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("redrive's client broken: %v", err)
	}
}

// TestCompatRedrivePublishesBeforeRedisstreamSubscribes: entries written by
// redrive before a watermill-redisstream subscriber exists are read by it
// from the start of the stream, as its own would be (OldestId "0").
func TestCompatRedrivePublishesBeforeRedisstreamSubscribes(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("compat-before-")
	deleteKeysAfter(t, client, topic)

	sent := compatMessages("redrive", 5)
	publish(t, newPublisher(t, client), topic, sent...)

	msgs := subscribe(t, newRedisstreamSubscriber(t, "late"), topic)
	got := map[string]*message.Message{}
	for len(got) < len(sent) {
		select {
		case m := <-msgs:
			got[m.UUID] = m
			m.Ack()
		case <-time.After(waitTimeout):
			t.Fatalf("redisstream got %d of %d messages", len(got), len(sent))
		}
	}
	sameMessages(t, "redisstream subscriber", got, sent)
}
