package admin

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/internal/wire"
	"github.com/redrive-go/redrive/middleware"
)

// waitTimeout bounds every wait; a passing test never waits this long (two
// cores shared with Redis, and -race).
const waitTimeout = 30 * time.Second

func newTestAdmin(t *testing.T, client redis.UniversalClient, batch int) *Admin {
	t.Helper()
	a, err := NewAdmin(Config{Client: client, BatchSize: batch}, nil)
	if err != nil {
		t.Fatalf("NewAdmin: %v", err)
	}
	return a
}

// poisoned describes a poison entry for addPoisoned.
type poisoned struct {
	topic, handler, subscriber, group, reason, lastError string
	attempts                                             int
	payload                                              string
	// id is the entry ID to use; "" lets Redis choose.
	id string
	// requeues is a previous requeue count.
	requeues int
}

var marshaller = redrive.DefaultMarshallerUnmarshaller{}

// addPoisoned writes a poison entry as the retry middleware (or, with group,
// the Subscriber) would, and returns its ID and the message UUID.
func addPoisoned(t *testing.T, client redis.UniversalClient, stream string, p poisoned) (id, uuid string) {
	t.Helper()
	msg := message.NewMessage(watermill.NewUUID(), []byte(p.payload))
	md := msg.Metadata
	md.Set("custom", "kept")
	md.Set(wmiddleware.ReasonForPoisonedKey, p.reason)
	md.Set(wmiddleware.PoisonedTopicKey, p.topic)
	md.Set(wmiddleware.PoisonedHandlerKey, p.handler)
	md.Set(wmiddleware.PoisonedSubscriberKey, p.subscriber)
	if p.group != "" {
		md.Set(redrive.MetadataPoisonedConsumerGroup, p.group)
		md.Set(redrive.MetadataPoisonedSourceStream, p.topic)
		md.Set(redrive.MetadataPoisonedSourceID, "1-1")
		md.Set(redrive.MetadataPoisonedAt, time.Now().UTC().Format(time.RFC3339Nano))
	}
	first := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	last := first.Add(time.Duration(p.attempts) * time.Minute)
	if p.attempts > 0 {
		md.Set(middleware.MetadataAttempts, strconv.Itoa(p.attempts))
		md.Set(middleware.MetadataFirstFailedAt, first.Format(time.RFC3339Nano))
		md.Set(middleware.MetadataLastFailedAt, last.Format(time.RFC3339Nano))
		md.Set(middleware.MetadataLastError, p.lastError)
		var history []middleware.Attempt
		for i := 1; i <= p.attempts; i++ {
			history = append(history, middleware.Attempt{Number: i, FailedAt: first.Add(time.Duration(i-1) * time.Minute), Error: p.lastError, Delay: time.Second})
		}
		h, _ := json.Marshal(history)
		md.Set(middleware.MetadataHistory, string(h))
	}
	if p.requeues > 0 {
		md.Set(MetadataRequeueCount, strconv.Itoa(p.requeues))
	}
	fields, err := marshaller.Marshal(stream, msg)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	id = p.id
	if id == "" {
		id = "*"
	}
	got, err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: id, Values: fields}).Result()
	if err != nil {
		t.Fatalf("XADD %s: %v", stream, err)
	}
	return got, msg.UUID
}

// createGroup creates a consumer group on topic and on its retry stream, as
// a Subscriber does.
func createGroup(t *testing.T, client redis.UniversalClient, topic, group string) {
	t.Helper()
	ctx := context.Background()
	keys := redrive.KeysFor(topic)
	for _, stream := range []string{keys.Stream, keys.GroupRetry(group)} {
		if err := client.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
			t.Fatalf("XGROUP CREATE %s %s: %v", stream, group, err)
		}
	}
}

// readStream decodes every entry of stream.
func readStream(t *testing.T, client redis.UniversalClient, stream string) []*message.Message {
	t.Helper()
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	var out []*message.Message
	for _, e := range entries {
		msg, err := marshaller.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("decode %s entry %s: %v", stream, e.ID, err)
		}
		out = append(out, msg)
	}
	return out
}

func xlen(t *testing.T, client redis.UniversalClient, stream string) int64 {
	t.Helper()
	n, err := client.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("XLEN %s: %v", stream, err)
	}
	return n
}

// delayedMember encodes a delayed sorted-set member the way the root package
// does, for sets the test fills itself.
func delayedMember(t *testing.T, id string, msg *message.Message, topic string) string {
	t.Helper()
	fields, err := marshaller.Marshal(topic, msg)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	member, err := wire.EncodeDelayedMember(id, fields)
	if err != nil {
		t.Fatalf("encode delayed member: %v", err)
	}
	return member
}

func newClient(t *testing.T) *redis.Client {
	return redistest.NewClient(t)
}
