package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// poisonEntry is an entry of a poison stream, decoded.
type poisonEntry struct {
	id  string
	msg *message.Message
	raw map[string]string
}

func readPoison(t *testing.T, client redis.UniversalClient, topic string) []poisonEntry {
	t.Helper()
	entries, err := client.XRange(context.Background(), redrive.KeysFor(topic).Poison, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE poison stream: %v", err)
	}
	out := make([]poisonEntry, 0, len(entries))
	for _, e := range entries {
		msg, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("poison entry %s does not decode: %v (%v)", e.ID, err, e.Values)
		}
		pe := poisonEntry{id: e.ID, msg: msg}
		if raw, ok := e.Values[redrive.RawFieldsField].(string); ok {
			if err := msgpack.Unmarshal([]byte(raw), &pe.raw); err != nil {
				t.Fatalf("poison entry %s: raw fields do not decode: %v", e.ID, err)
			}
		}
		out = append(out, pe)
	}
	return out
}

// TestForeignAndCorruptEntries: entries no subscriber can decode do not stop
// the subscription; they go to the poison stream with the reason and their
// raw fields, and are acked. An entry with a payload but no UUID is
// delivered, with its entry ID as UUID.
func TestForeignAndCorruptEntries(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("foreign-")
	deleteKeysAfter(t, client, topic)
	ctx := context.Background()
	const group = "g"

	add := func(values map[string]interface{}) string {
		t.Helper()
		id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values}).Result()
		if err != nil {
			t.Fatalf("XADD: %v", err)
		}
		return id
	}
	foreignID := add(map[string]interface{}{"payload": "from another language"})
	bareFields := map[string]interface{}{"foo": "bar", "n": "1"}
	bareID := add(bareFields)
	corruptFields := map[string]interface{}{
		redrive.UUIDHeaderKey: "corrupt-metadata",
		"payload":             "p",
		"metadata":            "\xc1 this is not msgpack",
	}
	corruptID := add(corruptFields)
	good := newMessages("good", 5)
	publish(t, newPublisher(t, client), topic, good...)

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, nil)
	c := collect(subscribe(t, sub, topic))
	c.waitUnique(t, 6)
	sameSet(t, "delivered", c.ids(), append(uuids(good), foreignID))

	foreign := c.get(foreignID)
	if string(foreign.Payload) != "from another language" || len(foreign.Metadata) != 0 {
		t.Errorf("foreign entry delivered as payload %q metadata %v", foreign.Payload, foreign.Metadata)
	}
	for i, m := range good {
		got := c.get(m.UUID)
		if string(got.Payload) != string(m.Payload) || got.Metadata.Get("i") != fmt.Sprint(i) {
			t.Errorf("message %d delivered as payload %q metadata %v", i, got.Payload, got.Metadata)
		}
	}

	redistest.WaitFor(t, waitTimeout, func() bool {
		return len(readPoison(t, client, topic)) == 2 && pendingCount(t, client, topic, group) == 0
	}, "two poison entries and nothing pending")
	want := map[string]map[string]interface{}{bareID: bareFields, corruptID: corruptFields}
	for _, p := range readPoison(t, client, topic) {
		source := p.msg.Metadata.Get(redrive.MetadataPoisonedSourceID)
		fields, ok := want[source]
		if !ok {
			t.Fatalf("poison entry %s comes from %q, want one of %s, %s", p.id, source, bareID, corruptID)
		}
		delete(want, source)
		if r := p.msg.Metadata.Get(wmmiddleware.ReasonForPoisonedKey); !strings.HasPrefix(r, redrive.ReasonUndecodable) {
			t.Errorf("poison entry for %s: reason %q, want it to start with %q", source, r, redrive.ReasonUndecodable)
		}
		if code := p.msg.Metadata.Get(redrive.MetadataPoisonReason); code != string(redrive.PoisonReasonUndecodable) {
			t.Errorf("poison entry for %s: %s = %q, want %q", source, redrive.MetadataPoisonReason, code, redrive.PoisonReasonUndecodable)
		}
		if got := p.msg.Metadata.Get(wmmiddleware.PoisonedTopicKey); got != topic {
			t.Errorf("poison entry for %s: topic %q, want %q", source, got, topic)
		}
		if got := p.msg.Metadata.Get(redrive.MetadataPoisonedSourceStream); got != topic {
			t.Errorf("poison entry for %s: source stream %q, want %q", source, got, topic)
		}
		if len(p.raw) != len(fields) {
			t.Errorf("poison entry for %s: raw fields %v, want %v", source, p.raw, fields)
		}
		for k, v := range fields {
			if p.raw[k] != v {
				t.Errorf("poison entry for %s: raw field %q is %q, want %q", source, k, p.raw[k], v)
			}
		}
	}
	if n := c.unique(); n != 6 {
		t.Errorf("%d distinct messages delivered, want 6", n)
	}
}

// TestForeignAndCorruptEntriesFanOut: a fan-out subscriber owns nothing, so it
// skips what it cannot decode (every other reader sees the same entry) and
// goes on.
func TestForeignAndCorruptEntriesFanOut(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("foreign-fanout-")
	deleteKeysAfter(t, client, topic)
	ctx := context.Background()
	logger := newRecordingLogger()

	for _, values := range []map[string]interface{}{
		{"foo": "bar"},
		{redrive.UUIDHeaderKey: "x", "payload": "p", "metadata": "\xc1"},
	} {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values}).Err(); err != nil {
			t.Fatalf("XADD: %v", err)
		}
	}
	good := newMessages("good", 3)
	publish(t, newPublisher(t, client), topic, good...)

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, FanOutOldestId: "0"}, logger)
	c := collect(subscribe(t, sub, topic))
	c.waitUnique(t, 3)
	sameSet(t, "delivered", c.ids(), uuids(good))
	// The good entries come after the bad ones in the stream, so both bad
	// ones were seen by now.
	if n := len(logger.matching("error", "Skipping an entry that cannot be decoded")); n != 2 {
		t.Errorf("%d undecodable entries reported, want 2", n)
	}
	if n, _ := client.XLen(ctx, redrive.KeysFor(topic).Poison).Result(); n != 0 {
		t.Errorf("fan-out wrote %d poison entries, want none", n)
	}
}

// fakeRead reads count new entries of stream as consumer and never acks
// them, as a consumer that dies would.
func fakeRead(t *testing.T, client redis.UniversalClient, stream, group, consumer string, count int64) []string {
	t.Helper()
	res, err := client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{stream, ">"}, Count: count, Block: -1,
	}).Result()
	if err != nil {
		t.Fatalf("XREADGROUP as %s: %v", consumer, err)
	}
	var ids []string
	for _, s := range res {
		for _, m := range s.Messages {
			ids = append(ids, m.ID)
		}
	}
	if int64(len(ids)) != count {
		t.Fatalf("XREADGROUP as %s read %d entries, want %d", consumer, len(ids), count)
	}
	return ids
}

func createGroup(t *testing.T, client redis.UniversalClient, stream, group string) {
	t.Helper()
	if err := client.XGroupCreateMkStream(context.Background(), stream, group, "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
}

// TestDeadConsumerPendingClaimed: a consumer that read entries and died
// leaves them pending; a live subscriber of the group claims them after
// MaxIdleTime, in batches, and each is delivered once.
func TestDeadConsumerPendingClaimed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxInFlight int
		dead        int
	}{
		{"default", 0, 250},
		// The reader holds every slot during its blocking reads when
		// MaxInFlight <= ReadBatchSize; the claimer must still get its turn.
		{"MaxInFlight1", 1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := redistest.NewClient(t)
			topic := redistest.RandomTopic("dead-")
			deleteKeysAfter(t, client, topic)
			const group = "g"
			pub := newPublisher(t, client)

			createGroup(t, client, topic, group)
			abandoned := newMessages("abandoned", tc.dead)
			publish(t, pub, topic, abandoned...)
			fakeRead(t, client, topic, group, "dead", int64(tc.dead))
			fresh := newMessages("fresh", 20)
			publish(t, pub, topic, fresh...)

			logger := newRecordingLogger()
			sub := newSubscriber(t, redrive.SubscriberConfig{
				Client:         client,
				ConsumerGroup:  group,
				Consumer:       "live",
				MaxInFlight:    tc.maxInFlight,
				MaxIdleTime:    time.Second,
				ClaimInterval:  100 * time.Millisecond,
				ClaimBatchSize: 100,
			}, logger)
			c := collect(subscribe(t, sub, topic))
			c.waitUnique(t, tc.dead+20)
			sameSet(t, "delivered", c.ids(), append(uuids(abandoned), uuids(fresh)...))
			redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "all acked")
			if got := len(c.deliveries()); got != tc.dead+20 {
				t.Errorf("%d deliveries of %d messages: some were delivered twice", got, tc.dead+20)
			}

			claimed, passes := 0, 0
			for _, r := range logger.matching("info", "Claimed entries of idle consumers") {
				n, _ := r.fields["count"].(int)
				if n > 100 {
					t.Errorf("one claim took %d entries, more than ClaimBatchSize 100", n)
				}
				claimed += n
				passes++
			}
			if claimed != tc.dead {
				t.Errorf("claimed %d entries, want the %d the dead consumer left", claimed, tc.dead)
			}
			if tc.maxInFlight == 0 && passes > 5 {
				// 250 entries in batches of up to 100: three claims, a few
				// more if the handler was slow to free slots, never one per
				// entry.
				t.Errorf("claimed %d entries in %d claims, want batches", claimed, passes)
			}
		})
	}
}

// TestSlowHandlerNotDuplicated: a handler that holds a message longer than
// MaxIdleTime keeps it, while another consumer of the group claims idle
// entries all along.
func TestSlowHandlerNotDuplicated(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("slow-")
	deleteKeysAfter(t, client, topic)
	const group = "g"
	const maxIdle = time.Second
	pub := newPublisher(t, client)

	// Abandoned by a dead consumer: proof that the other subscriber claims.
	createGroup(t, client, topic, group)
	abandoned := message.NewMessage(watermill.NewUUID(), []byte("abandoned"))
	publish(t, pub, topic, abandoned)
	fakeRead(t, client, topic, group, "dead", 1)

	slowMsg := message.NewMessage(watermill.NewUUID(), []byte("slow"))
	publish(t, pub, topic, slowMsg)
	slow := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "slow",
		MaxIdleTime: maxIdle,
		// Only the other subscriber claims.
		ClaimInterval: time.Hour,
	}, nil)
	held, _ := await(t, subscribe(t, slow, topic), "a message for the slow subscriber")
	if held.UUID != slowMsg.UUID {
		t.Fatalf("slow subscriber got %s, want %s", held.UUID, slowMsg.UUID)
	}
	heldSince := time.Now()

	claimer := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "claimer",
		MaxIdleTime:   maxIdle,
		ClaimInterval: 50 * time.Millisecond,
	}, nil)
	c := collect(subscribe(t, claimer, topic))

	// Hold the message three times MaxIdleTime, while the claimer has been
	// claiming every 50ms (it took the abandoned entry).
	redistest.WaitFor(t, waitTimeout, func() bool {
		return c.has(abandoned.UUID) && time.Since(heldSince) > 3*maxIdle
	}, "abandoned entry claimed and the slow message held for 3×MaxIdleTime")

	if c.has(slowMsg.UUID) {
		t.Fatal("the claimer got the message the slow handler still holds")
	}
	p := pendingEntries(t, client, topic, group)
	if len(p) != 1 || p[0].ID == "" || p[0].Consumer != "slow" || p[0].RetryCount != 1 {
		t.Fatalf("pending %+v, want only the slow message, owned by slow, delivered once", p)
	}
	held.Ack()
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "slow message acked")
	if got := c.deliveries(); len(got) != 1 {
		t.Errorf("claimer got %v, want only the abandoned message", got)
	}
}

// TestJanitorKeepsConsumersWithPending: idle consumers are removed from the
// group, but never one that still has pending entries.
func TestJanitorKeepsConsumersWithPending(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("janitor-")
	deleteKeysAfter(t, client, topic)
	ctx := context.Background()
	const group = "g"

	createGroup(t, client, topic, group)
	publish(t, newPublisher(t, client), topic, newMessages("m", 1)...)
	pendingIDs := fakeRead(t, client, topic, group, "idle-with-pending", 1)
	// Created after, so it has been idle for less time than the other.
	if err := client.XGroupCreateConsumer(ctx, topic, group, "idle-empty").Err(); err != nil {
		t.Fatalf("XGROUP CREATECONSUMER: %v", err)
	}

	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "live",
		CheckConsumersInterval: 100 * time.Millisecond,
		ConsumerTimeout:        300 * time.Millisecond,
		// Nobody claims the pending entry during the test.
		MaxIdleTime:   time.Hour,
		ClaimInterval: time.Hour,
	}, nil)
	_ = subscribe(t, sub, topic)

	consumers := func() map[string]redis.XInfoConsumer {
		list, err := client.XInfoConsumers(ctx, topic, group).Result()
		if err != nil {
			t.Fatalf("XINFO CONSUMERS: %v", err)
		}
		m := map[string]redis.XInfoConsumer{}
		for _, c := range list {
			m[c.Name] = c
		}
		return m
	}
	redistest.WaitFor(t, waitTimeout, func() bool {
		_, ok := consumers()["idle-empty"]
		return !ok
	}, "idle consumer without pending entries removed")
	// The same pass saw idle-with-pending, idle even longer.
	got := consumers()
	if c, ok := got["idle-with-pending"]; !ok || c.Pending != 1 {
		t.Fatalf("consumers %v: idle-with-pending and its pending entry must stay", got)
	}
	if _, ok := got["live"]; !ok {
		t.Fatalf("consumers %v: the live subscriber was removed", got)
	}
	p := pendingEntries(t, client, topic, group)
	if len(p) != 1 || p[0].ID != pendingIDs[0] || p[0].Consumer != "idle-with-pending" {
		t.Fatalf("pending %+v, want %s owned by idle-with-pending", p, pendingIDs[0])
	}
}

// TestDeletedPendingEntriesAckedAway: entries trimmed or deleted while
// pending are acked away, not claimed or re-read forever, both when another
// consumer claims them and when their own consumer comes back.
func TestDeletedPendingEntriesAckedAway(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		consumer string
	}{
		{"ClaimedFromDeadConsumer", "claimer"},
		{"OwnPendingAfterRestart", "dead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := redistest.NewClient(t)
			topic := redistest.RandomTopic("trimmed-")
			deleteKeysAfter(t, client, topic)
			ctx := context.Background()
			const group = "g"

			createGroup(t, client, topic, group)
			msgs := newMessages("m", 10)
			publish(t, newPublisher(t, client), topic, msgs...)
			ids := fakeRead(t, client, topic, group, "dead", 10)
			// Trim the two oldest, delete one more.
			if err := client.XTrimMinID(ctx, topic, ids[2]).Err(); err != nil {
				t.Fatalf("XTRIM: %v", err)
			}
			if err := client.XDel(ctx, topic, ids[5]).Err(); err != nil {
				t.Fatalf("XDEL: %v", err)
			}
			var kept []*message.Message
			for i, m := range msgs {
				if i != 0 && i != 1 && i != 5 {
					kept = append(kept, m)
				}
			}

			sub := newSubscriber(t, redrive.SubscriberConfig{
				Client: client, ConsumerGroup: group, Consumer: tc.consumer,
				MaxIdleTime:   300 * time.Millisecond,
				ClaimInterval: 50 * time.Millisecond,
			}, nil)
			c := collect(subscribe(t, sub, topic))
			c.waitUnique(t, len(kept))
			redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 },
				"nothing pending: deleted entries acked away")
			sameSet(t, "delivered", c.ids(), uuids(kept))
		})
	}
}

// TestMaxDeliveriesPoison: an entry delivered MaxDeliveries times without
// being settled (its handler crashes the process) goes to the poison stream
// instead of being delivered again, whether another consumer claims it or
// the crashed consumer comes back under the same name.
func TestMaxDeliveriesPoison(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		consumer string
	}{
		{"ClaimedFromDeadConsumer", "claimer"},
		{"OwnPendingAfterRestart", "crashed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := redistest.NewClient(t)
			topic := redistest.RandomTopic("maxdeliveries-")
			deleteKeysAfter(t, client, topic)
			ctx := context.Background()
			const group = "g"
			const maxDeliveries = 3

			createGroup(t, client, topic, group)
			crasher := message.NewMessage(watermill.NewUUID(), []byte("crashes the process"))
			crasher.Metadata.Set("k", "v")
			lastChance := message.NewMessage(watermill.NewUUID(), []byte("one delivery left"))
			publish(t, newPublisher(t, client), topic, crasher, lastChance)
			ids := fakeRead(t, client, topic, group, "crashed", 2)
			// Set the delivery counts as if the entries had gone round the
			// group this many times.
			for id, count := range map[string]int{ids[0]: maxDeliveries, ids[1]: maxDeliveries - 1} {
				if err := client.Do(ctx, "XCLAIM", topic, group, "crashed", 0, id, "RETRYCOUNT", count).Err(); err != nil {
					t.Fatalf("XCLAIM RETRYCOUNT: %v", err)
				}
			}
			fresh := message.NewMessage(watermill.NewUUID(), []byte("fresh"))
			publish(t, newPublisher(t, client), topic, fresh)

			sub := newSubscriber(t, redrive.SubscriberConfig{
				Client: client, ConsumerGroup: group, Consumer: tc.consumer,
				MaxDeliveries: maxDeliveries,
				MaxIdleTime:   300 * time.Millisecond,
				ClaimInterval: 50 * time.Millisecond,
			}, nil)
			c := collect(subscribe(t, sub, topic))
			redistest.WaitFor(t, waitTimeout, func() bool {
				return c.unique() >= 2 && len(readPoison(t, client, topic)) >= 1 && pendingCount(t, client, topic, group) == 0
			}, "the entry with a delivery left delivered, the other poisoned, nothing pending")
			sameSet(t, "delivered", c.ids(), []string{lastChance.UUID, fresh.UUID})

			poison := readPoison(t, client, topic)
			if len(poison) != 1 {
				t.Fatalf("%d poison entries, want 1", len(poison))
			}
			p := poison[0].msg
			if p.UUID != crasher.UUID || string(p.Payload) != string(crasher.Payload) || p.Metadata.Get("k") != "v" {
				t.Errorf("poisoned %s %q %v, want %s %q with k=v", p.UUID, p.Payload, p.Metadata, crasher.UUID, crasher.Payload)
			}
			if r := p.Metadata.Get(wmmiddleware.ReasonForPoisonedKey); !strings.HasPrefix(r, redrive.ReasonExceededMaxDeliveries) {
				t.Errorf("reason %q, want %q", r, redrive.ReasonExceededMaxDeliveries)
			}
			if code := p.Metadata.Get(redrive.MetadataPoisonReason); code != string(redrive.PoisonReasonCrashLoop) {
				t.Errorf("%s = %q, want %q", redrive.MetadataPoisonReason, code, redrive.PoisonReasonCrashLoop)
			}
			if got := p.Metadata.Get(redrive.MetadataPoisonedSourceID); got != ids[0] {
				t.Errorf("poisoned source ID %q, want %q", got, ids[0])
			}
		})
	}
}

// TestRedisRestartUnderSubscriber: Redis stops under a running subscriber and
// comes back; the subscriber resumes by itself, loses nothing, and logs each
// failure once instead of once per retry.
func TestRedisRestartUnderSubscriber(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, redistest.ServerOptions{AppendOnly: true})
	client := srv.Client(t)
	failed := &failedCommands{byName: map[string]int{}}
	client.AddHook(failed)
	topic := redistest.RandomTopic("restart-")
	const group = "g"
	logger := newRecordingLogger()

	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group,
		// A read or ack whose reply is lost in the outage leaves entries
		// pending that are claimed again after MaxIdleTime.
		MaxIdleTime:   2 * time.Second,
		ClaimInterval: 200 * time.Millisecond,
	}, logger)
	pub := newPublisher(t, client)
	c := collect(subscribe(t, sub, topic))

	before := newMessages("before", 50)
	publish(t, pub, topic, before...)
	c.waitUnique(t, 50)
	// Published, maybe not yet consumed, when Redis stops.
	around := newMessages("around", 50)
	publish(t, pub, topic, around...)
	srv.Stop()

	redistest.WaitFor(t, waitTimeout, func() bool {
		return len(logger.matching("error", "Reading the stream failed")) > 0
	}, "the subscriber noticed the outage")
	// The outage lasts until the loops failed again and again: one that
	// logged every failure (redisstream logs every 500ms per loop) would
	// have written a line each time. The reader blocks on a connection of
	// its own, which the hook does not see; the claimer's passes (every
	// 200 ms) on the client go on meanwhile, and the reader retries at
	// least as often (its backoff starts at 50 ms).
	const failures = 5
	redistest.WaitFor(t, waitTimeout, func() bool { return failed.total() >= failures },
		"%d failed commands during the outage", failures)
	srv.Restart()

	// Right after a restart the client may still answer with the last dial
	// error for a moment; a publisher retries, as the universal suite does.
	after := newMessages("after", 50)
	redistest.WaitFor(t, waitTimeout, func() bool { return pub.Publish(topic, after...) == nil }, "publish after the restart")
	t.Cleanup(func() { logOnFailure(t, logger) })
	c.waitUnique(t, 150)
	all := append(append(uuids(before), uuids(around)...), uuids(after)...)
	sameSet(t, "delivered", c.ids(), all)
	redistest.WaitFor(t, waitTimeout, func() bool {
		return len(logger.matching("info", "Reading the stream failed: recovered")) > 0
	}, "the reader logged its recovery")

	if n := len(logger.matching("error", "Reading the stream failed")); n != 1 {
		t.Errorf("the reader logged %d errors for one outage, want 1", n)
	}
	// One line per loop that touches Redis (reader, claimer, keeper, acker,
	// delayed movers), not one per retry.
	if n := logger.count("error"); n > 8 {
		for _, r := range logger.matching("error", "") {
			t.Logf("error: %s: %v", r.msg, r.err)
		}
		t.Errorf("%d error lines for one outage of a few seconds", n)
	}
}

// failedCommands is a go-redis hook that counts the commands that failed,
// by name.
type failedCommands struct {
	mu     sync.Mutex
	byName map[string]int
}

func (f *failedCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *failedCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) {
			f.mu.Lock()
			f.byName[strings.ToLower(cmd.Name())]++
			f.mu.Unlock()
		}
		return err
	}
}

func (f *failedCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// total is how many commands failed, of any name.
func (f *failedCommands) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.byName {
		n += c
	}
	return n
}

// TestGroupRecreatedAfterStreamDeleted: deleting the stream deletes its
// consumer groups; the subscriber recreates its group and new messages flow.
func TestGroupRecreatedAfterStreamDeleted(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("nogroup-")
	deleteKeysAfter(t, client, topic)
	logger := newRecordingLogger()

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}, logger)
	pub := newPublisher(t, client)
	c := collect(subscribe(t, sub, topic))
	first := newMessages("first", 5)
	publish(t, pub, topic, first...)
	c.waitUnique(t, 5)

	if err := client.Del(context.Background(), topic).Err(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	second := newMessages("second", 5)
	publish(t, pub, topic, second...)
	c.waitUnique(t, 10)
	sameSet(t, "delivered", c.ids(), append(uuids(first), uuids(second)...))
	if len(logger.matching("info", "Consumer group missing; recreating it")) == 0 {
		t.Error("the subscriber never saw NOGROUP; the test did not test recreation")
	}
}

// await returns the next value from ch, or ok false when ch is closed, and
// fails the test when neither happens within waitTimeout; what names what
// is awaited. Every wait on a channel in these tests goes through it.
func await[T any](t *testing.T, ch <-chan T, what string) (v T, ok bool) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case v, ok = <-ch:
		return v, ok
	case <-timer.C:
		t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		return v, false
	}
}

// receiveN takes n messages from msgs without acking them.
func receiveN(t *testing.T, msgs <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	out := make([]*message.Message, 0, n)
	for len(out) < n {
		m, ok := await(t, msgs, fmt.Sprintf("message %d of %d", len(out)+1, n))
		if !ok {
			t.Fatalf("channel closed after %d of %d messages", len(out), n)
		}
		out = append(out, m)
	}
	return out
}

// TestCloseDoesNotWaitForInFlight: Close returns without waiting for
// handed-out messages (a reader that stopped may never ack them), leaves
// their contexts alone, and their acks after Close still reach Redis.
func TestCloseDoesNotWaitForInFlight(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("close-wait-")
	deleteKeysAfter(t, client, topic)
	const group = "g"

	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group,
		// Far longer than the test: the acks below reach Redis because they
		// were made in time, not because the time ran out.
		CloseTimeout: 5 * time.Minute,
		// Acks wait long to be batched, so only the flush after the last
		// handed-out message settled sends them in time.
		AckFlushInterval: time.Minute,
	}, nil)
	msgs := subscribe(t, sub, topic)
	publish(t, newPublisher(t, client), topic, newMessages("m", 5)...)
	inFlight := receiveN(t, msgs, 5)

	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	if err, _ := await(t, closed, "Close to return without waiting for handed-out messages"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, m := range inFlight {
		if err := m.Context().Err(); err != nil {
			t.Fatalf("message %s: context cancelled by Close: %v", m.UUID, err)
		}
		m.Ack()
	}
	// The channel closes once the messages out were settled and their acks
	// sent, as a Router waiting for it expects.
	if _, open := await(t, msgs, "the message channel to close after every message was acked"); open {
		t.Fatal("a message was handed out after Close")
	}
	if n := pendingCount(t, client, topic, group); n != 0 {
		t.Fatalf("%d entries pending when the channel closed: acks made after Close not flushed first", n)
	}
}

// TestCloseReleasesUnacked: what is still unacked when CloseTimeout runs out
// is released, so another consumer claims it at its next pass instead of
// after MaxIdleTime; what was acked is flushed.
func TestCloseReleasesUnacked(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("close-release-")
	deleteKeysAfter(t, client, topic)
	const group = "g"
	const maxIdle = 10 * time.Minute

	first := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "first",
		CloseTimeout:     200 * time.Millisecond,
		MaxIdleTime:      maxIdle,
		ClaimInterval:    time.Hour,
		AckFlushInterval: time.Minute,
	}, nil)
	msgs := subscribe(t, first, topic)
	published := newMessages("m", 10)
	publish(t, newPublisher(t, client), topic, published...)
	got := receiveN(t, msgs, 10)
	for _, m := range got[:6] {
		m.Ack()
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close does not wait for handed-out messages; CloseTimeout after it,
	// their contexts are cancelled and they go back to the group.
	for _, m := range got[6:] {
		await(t, m.Context().Done(), "message "+m.UUID+"'s context to be cancelled when CloseTimeout ran out")
	}
	redistest.WaitFor(t, waitTimeout, func() bool {
		p := pendingEntries(t, client, topic, group)
		if len(p) != 4 {
			return false
		}
		for _, e := range p {
			if e.Consumer != "first" || e.Idle < maxIdle {
				return false
			}
		}
		return true
	}, "the 4 unacked entries released (owned by first, idle >= MaxIdleTime) and the 6 acks flushed")

	second := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "second",
		MaxIdleTime:   maxIdle,
		ClaimInterval: 100 * time.Millisecond,
	}, nil)
	c := collect(subscribe(t, second, topic))
	// Well before MaxIdleTime: only the release makes this possible.
	c.waitUnique(t, 4)
	sameSet(t, "claimed", c.ids(), uuids(got[6:]))
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "all acked")
}

// TestCloseIdempotentClientUsable: Close can be called again, and never
// closes the caller's client.
func TestCloseIdempotentClientUsable(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("close-client-")
	deleteKeysAfter(t, client, topic)
	ctx := context.Background()

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := collect(subscribe(t, sub, topic))
	m := newMessages("m", 1)
	publish(t, pub, topic, m...)
	c.waitUnique(t, 1)

	for i := 0; i < 2; i++ {
		if err := pub.Close(); err != nil {
			t.Fatalf("Publisher.Close #%d: %v", i+1, err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("Subscriber.Close #%d: %v", i+1, err)
		}
	}
	<-c.done
	if err := pub.Publish(topic, newMessages("late", 1)...); !errors.Is(err, redrive.ErrPublisherClosed) {
		t.Errorf("Publish after Close: %v, want ErrPublisherClosed", err)
	}
	if _, err := sub.Subscribe(ctx, topic); !errors.Is(err, redrive.ErrSubscriberClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrSubscriberClosed", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's client is broken after Close: %v", err)
	}
	if n, err := client.XLen(ctx, topic).Result(); err != nil || n != 1 {
		t.Fatalf("XLEN after Close: %d, %v", n, err)
	}
}

// fakeVersion answers INFO as a Redis of another version would, and
// records which commands went through.
type fakeVersion struct {
	version string
	mu      sync.Mutex
	seen    []string
}

func (f *fakeVersion) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *fakeVersion) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := strings.ToLower(cmd.Name())
		f.mu.Lock()
		f.seen = append(f.seen, name)
		f.mu.Unlock()
		if sc, ok := cmd.(*redis.StringCmd); ok && name == "info" {
			sc.SetVal("# Server\r\nredis_version:" + f.version + "\r\nredis_mode:standalone\r\n")
			return nil
		}
		return next(ctx, cmd)
	}
}

func (f *fakeVersion) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (f *fakeVersion) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// TestServerVersionChecked: a Redis older than 6.2 (no XAUTOCLAIM, no
// XPENDING IDLE) gets a clear error from Subscribe, not a stream of syntax
// errors in the log.
func TestServerVersionChecked(t *testing.T) {
	t.Parallel()
	newClient := func(version string) (*redis.Client, *fakeVersion) {
		client := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
		t.Cleanup(func() { _ = client.Close() })
		hook := &fakeVersion{version: version}
		client.AddHook(hook)
		return client, hook
	}
	topic := redistest.RandomTopic("version-")
	deleteKeysAfter(t, redistest.NewClient(t), topic)

	for _, group := range []string{"g", ""} {
		client, hook := newClient("6.0.9")
		sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, nil)
		_, err := sub.Subscribe(context.Background(), topic)
		if err == nil {
			t.Fatalf("group %q: Subscribe on Redis 6.0.9 succeeded", group)
		}
		if !strings.Contains(err.Error(), "6.0.9") || !strings.Contains(err.Error(), "6.2") {
			t.Errorf("group %q: error %q should name the server version and the one needed", group, err)
		}
		if group != "" {
			if err := sub.SubscribeInitialize(topic); err == nil {
				t.Errorf("SubscribeInitialize on Redis 6.0.9 succeeded")
			}
		}
		for _, cmd := range hook.commands() {
			if cmd != "info" {
				t.Errorf("group %q: sent %s to a server that is too old", group, cmd)
			}
		}
	}

	// The oldest supported version works.
	client, _ := newClient("6.2.0")
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}, nil)
	c := collect(subscribe(t, sub, topic))
	m := newMessages("m", 1)
	publish(t, newPublisher(t, client), topic, m...)
	c.waitUnique(t, 1)
}

// TestInvalidConfig: every invalid value is refused with an error naming
// the field.
func TestInvalidConfig(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	for _, tc := range []struct {
		field  string
		mutate func(*redrive.SubscriberConfig)
	}{
		{"Client", func(c *redrive.SubscriberConfig) { c.Client = nil }},
		{"BlockTime", func(c *redrive.SubscriberConfig) { c.BlockTime = -time.Second }},
		{"ClaimInterval", func(c *redrive.SubscriberConfig) { c.ClaimInterval = -time.Second }},
		{"MaxIdleTime", func(c *redrive.SubscriberConfig) { c.MaxIdleTime = -time.Second }},
		{"CheckConsumersInterval", func(c *redrive.SubscriberConfig) { c.CheckConsumersInterval = -time.Second }},
		{"ConsumerTimeout", func(c *redrive.SubscriberConfig) { c.ConsumerTimeout = -time.Second }},
		{"AckFlushInterval", func(c *redrive.SubscriberConfig) { c.AckFlushInterval = -time.Second }},
		{"CloseTimeout", func(c *redrive.SubscriberConfig) { c.CloseTimeout = -time.Second }},
		{"DelayedPollInterval", func(c *redrive.SubscriberConfig) { c.DelayedPollInterval = -time.Second }},
		{"NackResendSleep", func(c *redrive.SubscriberConfig) { c.NackResendSleep = -time.Second }},
		{"ClaimBatchSize", func(c *redrive.SubscriberConfig) { c.ClaimBatchSize = -1 }},
		{"ReadBatchSize", func(c *redrive.SubscriberConfig) { c.ReadBatchSize = -1 }},
		{"MaxInFlight", func(c *redrive.SubscriberConfig) { c.MaxInFlight = -1 }},
		{"AckBatchSize", func(c *redrive.SubscriberConfig) { c.AckBatchSize = -1 }},
		{"DelayedBatchSize", func(c *redrive.SubscriberConfig) { c.DelayedBatchSize = -1 }},
		{"MaxDeliveries", func(c *redrive.SubscriberConfig) { c.MaxDeliveries = -2 }},
		{"DelayedMaxlen", func(c *redrive.SubscriberConfig) { c.DelayedMaxlen = -1 }},
		{"OldestId", func(c *redrive.SubscriberConfig) { c.OldestId = "latest" }},
		{"FanOutOldestId", func(c *redrive.SubscriberConfig) { c.FanOutOldestId = "newest" }},
	} {
		config := redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}
		tc.mutate(&config)
		_, err := redrive.NewSubscriber(config, nil)
		if err == nil || !strings.Contains(err.Error(), "SubscriberConfig."+tc.field) {
			t.Errorf("SubscriberConfig with invalid %s: error %v, want one naming the field", tc.field, err)
		}
	}

	for _, tc := range []struct {
		field  string
		mutate func(*redrive.PublisherConfig)
	}{
		{"Client", func(c *redrive.PublisherConfig) { c.Client = nil }},
		{"Maxlens", func(c *redrive.PublisherConfig) { c.Maxlens = map[string]int64{"t": -1} }},
		{"DefaultMaxlen", func(c *redrive.PublisherConfig) { c.DefaultMaxlen = -1 }},
		{"MaxPipelineSize", func(c *redrive.PublisherConfig) { c.MaxPipelineSize = -1 }},
		{"Pipelines", func(c *redrive.PublisherConfig) { c.Pipelines = -1 }},
	} {
		config := redrive.PublisherConfig{Client: client}
		tc.mutate(&config)
		_, err := redrive.NewPublisher(config, nil)
		if err == nil || !strings.Contains(err.Error(), "PublisherConfig."+tc.field) {
			t.Errorf("PublisherConfig with invalid %s: error %v, want one naming the field", tc.field, err)
		}
	}

	// Zero values mean the defaults, which are valid.
	if _, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client}, nil); err != nil {
		t.Errorf("NewSubscriber with defaults: %v", err)
	}
	if pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil); err != nil {
		t.Errorf("NewPublisher with defaults: %v", err)
	} else {
		_ = pub.Close()
	}
}

// TestPublishBatchInOrder: the messages of one Publish call enter the stream,
// and reach a MaxInFlight 1 subscriber, in the order given.
func TestPublishBatchInOrder(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("batch-")
	deleteKeysAfter(t, client, topic)

	msgs := newMessages("m", 100)
	publish(t, newPublisher(t, client), topic, msgs...)

	entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	var inStream []string
	for _, e := range entries {
		inStream = append(inStream, fmt.Sprint(e.Values[redrive.UUIDHeaderKey]))
	}
	if strings.Join(inStream, ",") != strings.Join(uuids(msgs), ",") {
		t.Fatalf("stream order %v, want %v", inStream, uuids(msgs))
	}

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g", MaxInFlight: 1}, nil)
	c := collect(subscribe(t, sub, topic))
	c.waitUnique(t, 100)
	if got := c.deliveries(); strings.Join(got, ",") != strings.Join(uuids(msgs), ",") {
		t.Fatalf("delivery order %v, want %v", got, uuids(msgs))
	}
}

// TestConcurrentPublish: Publish calls from 16 goroutines at once all
// arrive.
func TestConcurrentPublish(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("concurrent-")
	deleteKeysAfter(t, client, topic)
	pub := newPublisher(t, client)

	const goroutines, perGoroutine = 16, 100
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent []string
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, m := range newMessages(fmt.Sprintf("g%d", g), perGoroutine) {
				if err := pub.Publish(topic, m); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				sent = append(sent, m.UUID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n, err := client.XLen(context.Background(), topic).Result(); err != nil || n != goroutines*perGoroutine {
		t.Fatalf("XLEN %d, %v; want %d", n, err, goroutines*perGoroutine)
	}
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}, nil)
	c := collect(subscribe(t, sub, topic))
	c.waitUnique(t, goroutines*perGoroutine)
	sameSet(t, "delivered", c.ids(), sent)
}

// TestDelayedPublish: a message published with Watermill's delay metadata
// arrives, and not before its due time.
func TestDelayedPublish(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-")
	deleteKeysAfter(t, client, topic)

	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g"}, nil)
	c := collect(subscribe(t, sub, topic))
	pub := newPublisher(t, client)

	// Due times spread over a second and not on millisecond boundaries, so
	// that rounding of due times shows.
	due := map[string]time.Time{}
	var delayed []*message.Message
	for i := 0; i < 20; i++ {
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))
		d := 200*time.Millisecond + time.Duration(i)*53*time.Millisecond + time.Duration(i)*37*time.Microsecond
		// Taken before delay.For, which reads the clock itself: the due
		// time is at least this late.
		due[m.UUID] = time.Now().Add(d)
		delay.Message(m, delay.For(d))
		delayed = append(delayed, m)
	}
	publish(t, pub, topic, delayed...)
	now := message.NewMessage(watermill.NewUUID(), []byte("now"))
	publish(t, pub, topic, now)

	c.waitUnique(t, len(delayed)+1)
	sameSet(t, "delivered", c.ids(), append(uuids(delayed), now.UUID))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range delayed {
		if got := c.received[m.UUID]; got.Before(due[m.UUID]) {
			t.Errorf("message %s delivered %s before its due time", m.Payload, due[m.UUID].Sub(got))
		}
		if got := c.byUUID[m.UUID]; string(got.Payload) != string(m.Payload) ||
			got.Metadata.Get(delay.DelayedForKey) != m.Metadata.Get(delay.DelayedForKey) {
			t.Errorf("message %s arrived as %q %v", m.Payload, got.Payload, got.Metadata)
		}
	}
}

// TestDelayedScoreNeverBeforeDue: a delayed message waits in its sorted set
// under a score (milliseconds) that is not before its due time, whatever the
// sub-millisecond part of that time: a score rounded down lets the mover
// deliver it up to a millisecond early.
func TestDelayedScoreNeverBeforeDue(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-score-")
	deleteKeysAfter(t, client, topic)
	pub := newPublisher(t, client)

	// Far enough ahead that nothing moves it during the test.
	due := time.Now().Add(time.Hour).Truncate(time.Millisecond).Add(700 * time.Microsecond)
	m := message.NewMessage(watermill.NewUUID(), []byte("later"))
	m.Metadata.Set(delay.DelayedUntilKey, due.UTC().Format(time.RFC3339Nano))
	publish(t, pub, topic, m)

	waiting, err := client.ZRangeWithScores(context.Background(), redrive.KeysFor(topic).Delayed, 0, -1).Result()
	if err != nil || len(waiting) != 1 {
		t.Fatalf("delayed set holds %v (%v), want one message", waiting, err)
	}
	if score := time.UnixMilli(int64(waiting[0].Score)); score.Before(due) {
		t.Fatalf("scored %s, %s before its due time %s", score.Format(time.RFC3339Nano), due.Sub(score), due.Format(time.RFC3339Nano))
	}
}

// TestNackDoesNotBlockOthers: a nacked message waits for its redelivery
// without holding up the messages behind it, and stays pending in Redis
// until a handler acks it.
func TestNackDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("nack-")
	deleteKeysAfter(t, client, topic)
	const group = "g"

	first := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "first",
		// The redelivery cannot come before the test ends: whatever arrives
		// meanwhile did not wait for it.
		NackResendSleep: time.Hour,
		CloseTimeout:    100 * time.Millisecond,
	}, nil)
	msgs := subscribe(t, first, topic)
	bad := message.NewMessage(watermill.NewUUID(), []byte("fails"))
	good := newMessages("good", 20)
	publish(t, newPublisher(t, client), topic, append([]*message.Message{bad}, good...)...)

	got := map[string]bool{}
	nacks := 0
	for len(got) < len(good) {
		m, _ := await(t, msgs, fmt.Sprintf("message %d of %d behind a nacked one", len(got)+1, len(good)))
		if m.UUID == bad.UUID {
			nacks++
			m.Nack()
			continue
		}
		got[m.UUID] = true
		m.Ack()
	}
	if nacks != 1 {
		t.Fatalf("the failing message was delivered %d times before its redelivery time", nacks)
	}
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 1 },
		"only the nacked message still pending")
	if p := pendingEntries(t, client, topic, group); p[0].ID == "" || p[0].Consumer != "first" {
		t.Fatalf("pending %+v, want the nacked message owned by first", p)
	}

	// Not lost when its subscriber goes away before redelivering it.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "second",
		ClaimInterval: 100 * time.Millisecond,
	}, nil)
	c := collect(subscribe(t, second, topic))
	c.waitUnique(t, 1)
	sameSet(t, "redelivered", c.ids(), []string{bad.UUID})
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "acked")
}

// TestSubscriberThatLostRedisIsClaimed: a subscriber whose connection to
// Redis is gone (its process hangs or is cut off) can neither ack nor keep
// its messages fresh; another subscriber of the group takes them over after
// MaxIdleTime.
func TestSubscriberThatLostRedisIsClaimed(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("lost-")
	deleteKeysAfter(t, client, topic)
	const group = "g"

	lostClient := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	lost := newSubscriber(t, redrive.SubscriberConfig{
		Client: lostClient, ConsumerGroup: group, Consumer: "lost",
		MaxIdleTime:   time.Second,
		ClaimInterval: time.Hour,
		CloseTimeout:  100 * time.Millisecond,
	}, nil)
	msgs := subscribe(t, lost, topic)
	published := newMessages("m", 10)
	publish(t, newPublisher(t, client), topic, published...)
	receiveN(t, msgs, len(published)) // handed out, never acked
	_ = lostClient.Close()

	taker := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, Consumer: "taker",
		MaxIdleTime:   time.Second,
		ClaimInterval: 100 * time.Millisecond,
	}, nil)
	c := collect(subscribe(t, taker, topic))
	c.waitUnique(t, len(published))
	sameSet(t, "taken over", c.ids(), uuids(published))
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, group) == 0 }, "all acked")
}
