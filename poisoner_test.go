package redrive

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
)

func newTestPoisoner(t *testing.T, st serviceTopic, group groupStreams, onCrashLoop func(topic, id string)) *poisoner {
	t.Helper()
	p := newPoisoner(poisonerConfig{
		Client:        st.client,
		Topic:         st.keys.Stream,
		groupStreams:  group,
		Consumer:      "c",
		PoisonTopic:   st.keys.Poison,
		MaxDeliveries: 3,
		Marshaller:    DefaultMarshallerUnmarshaller{},
		Unmarshaller:  DefaultMarshallerUnmarshaller{},
		OnCrashLoop:   onCrashLoop,
		Logger:        watermill.NopLogger{},
	})
	p.TestSignals.Init(t)
	return p
}

// poisonEntries reads the poison stream and decodes its messages.
func (st serviceTopic) poisonEntries(t *testing.T) []*message.Message {
	t.Helper()
	entries, err := st.client.XRange(context.Background(), st.keys.Poison, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE poison: %v", err)
	}
	var msgs []*message.Message
	for _, e := range entries {
		msg, err := DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("poison entry %s does not decode: %v", e.ID, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

func TestPoisonerCrashLoop(t *testing.T) {
	t.Parallel()
	for _, fromRetry := range []bool{false, true} {
		name := map[bool]string{false: "TopicStream", true: "RetryStream"}[fromRetry]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newServiceTopic(t)
			stream := st.keys.Stream
			if fromRetry {
				stream = st.retry
			}
			sent := st.add(t, stream, 1)[0]
			sent.Metadata.Set("k", "v")
			entry := st.read(t, stream, "dead", 1)[0]

			var mu sync.Mutex
			var crashLoops []string
			p := newTestPoisoner(t, st, st.groupStreams(), func(topic, id string) {
				mu.Lock()
				defer mu.Unlock()
				crashLoops = append(crashLoops, topic+" "+id)
			})
			if err := p.poisonCrashLoop(context.Background(), stream, entry.ID, entry.Values, 5); err != nil {
				t.Fatalf("poisonCrashLoop: %v", err)
			}
			if id := p.TestSignals.Poisoned.Require(t, signalTimeout, "poisoned entry"); id != entry.ID {
				t.Fatalf("signalled %s poisoned, want %s", id, entry.ID)
			}

			poisoned := st.poisonEntries(t)
			if len(poisoned) != 1 {
				t.Fatalf("%d poison entries, want 1", len(poisoned))
			}
			got := poisoned[0]
			if got.UUID != sent.UUID || string(got.Payload) != string(sent.Payload) {
				t.Errorf("poisoned %s %q, want %s %q", got.UUID, got.Payload, sent.UUID, sent.Payload)
			}
			for key, want := range map[string]string{
				MetadataPoisonReason:             string(PoisonReasonCrashLoop),
				MetadataPoisonedSourceStream:     stream,
				MetadataPoisonedSourceID:         entry.ID,
				MetadataPoisonedConsumerGroup:    testGroup,
				middleware.PoisonedTopicKey:      st.keys.Stream,
				middleware.PoisonedSubscriberKey: testGroup,
			} {
				if v := got.Metadata.Get(key); v != want {
					t.Errorf("poison metadata %s = %q, want %q", key, v, want)
				}
			}
			if r := got.Metadata.Get(middleware.ReasonForPoisonedKey); r != ReasonExceededMaxDeliveries+" (5)" {
				t.Errorf("reason %q, want %q", r, ReasonExceededMaxDeliveries+" (5)")
			}
			if p := st.pending(t, stream); len(p) != 0 {
				t.Errorf("source entry still pending: %+v", p)
			}
			wantLen := int64(1)
			if fromRetry {
				wantLen = 0 // settled retries are deleted
			}
			if n := st.len(t, stream); n != wantLen {
				t.Errorf("source stream holds %d entries, want %d", n, wantLen)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(crashLoops) != 1 || crashLoops[0] != st.keys.Stream+" "+entry.ID {
				t.Errorf("OnCrashLoop calls %v, want one for %s", crashLoops, entry.ID)
			}
		})
	}
}

func TestPoisonerUndecodable(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	ctx := context.Background()
	raw := map[string]interface{}{"foo": "bar"}
	if err := st.client.XAdd(ctx, &redis.XAddArgs{Stream: st.keys.Stream, Values: raw}).Err(); err != nil {
		t.Fatalf("XADD: %v", err)
	}
	entry := st.read(t, st.keys.Stream, "c", 1)[0]

	p := newTestPoisoner(t, st, st.groupStreams(), nil)
	p.poisonUndecodable(ctx, st.keys.Stream, entry, errors.New("no payload"))
	if id := p.TestSignals.Poisoned.Require(t, signalTimeout, "poisoned entry"); id != entry.ID {
		t.Fatalf("signalled %s poisoned, want %s", id, entry.ID)
	}
	poisoned := st.poisonEntries(t)
	if len(poisoned) != 1 {
		t.Fatalf("%d poison entries, want 1", len(poisoned))
	}
	md := poisoned[0].Metadata
	if code := md.Get(MetadataPoisonReason); code != string(PoisonReasonUndecodable) {
		t.Errorf("%s = %q, want %q", MetadataPoisonReason, code, PoisonReasonUndecodable)
	}
	if r := md.Get(middleware.ReasonForPoisonedKey); !strings.HasPrefix(r, ReasonUndecodable) || !strings.Contains(r, "no payload") {
		t.Errorf("reason %q, want %q with the cause", r, ReasonUndecodable)
	}
	entries, err := st.client.XRange(ctx, st.keys.Poison, "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("XRANGE poison: %v %v", entries, err)
	}
	if _, ok := entries[0].Values[RawFieldsField]; !ok {
		t.Errorf("poison entry %v lacks the raw fields", entries[0].Values)
	}
	if p := st.pending(t, st.keys.Stream); len(p) != 0 {
		t.Errorf("source entry still pending: %+v", p)
	}
}

// In fan-out nobody owns an entry: an undecodable one is skipped, not
// poisoned.
func TestPoisonerFanOutSkipsUndecodable(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	ctx := context.Background()
	id, err := st.client.XAdd(ctx, &redis.XAddArgs{Stream: st.keys.Stream, Values: map[string]interface{}{"foo": "bar"}}).Result()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	p := newTestPoisoner(t, st, groupStreams{}, nil)
	p.poisonUndecodable(ctx, st.keys.Stream, redis.XMessage{ID: id, Values: map[string]interface{}{"foo": "bar"}}, errors.New("no payload"))
	if n := st.len(t, st.keys.Poison); n != 0 {
		t.Fatalf("fan-out poisoned %d entries, want none", n)
	}
}

func TestPoisonerOverDelivered(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 3)
	read := st.read(t, st.keys.Stream, "c", 3)
	// Limit 3: the first was delivered 3 times already, the second twice,
	// the third once.
	st.setIdle(t, st.keys.Stream, "c", 0, 3, read[0].ID)
	st.setIdle(t, st.keys.Stream, "c", 0, 2, read[1].ID)

	// The reader reads its own pending entries back, counting a delivery.
	res, err := st.client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: testGroup, Consumer: "c", Streams: []string{st.keys.Stream, "0"}, Count: 10, Block: -1,
	}).Result()
	if err != nil {
		t.Fatalf("XREADGROUP 0: %v", err)
	}
	p := newTestPoisoner(t, st, st.groupStreams(), nil)
	over := p.overDelivered(context.Background(), res)
	if len(over) != 1 || len(over[st.keys.Stream]) != 1 || over[st.keys.Stream][read[0].ID] != 3 {
		t.Fatalf("over-delivered %v, want only %s, delivered 3 times", over, read[0].ID)
	}
}
