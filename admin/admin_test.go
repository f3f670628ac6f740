package admin

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := NewAdmin(Config{}, nil); err == nil || !strings.Contains(err.Error(), "Client") {
		t.Errorf("NewAdmin without a client: err = %v, want one naming Client", err)
	}
	client := newClient(t)
	if _, err := NewAdmin(Config{Client: client, BatchSize: -1}, nil); err == nil {
		t.Error("NewAdmin with BatchSize -1: no error")
	}
	a, err := NewAdmin(Config{Client: client}, nil)
	if err != nil {
		t.Fatalf("NewAdmin: %v", err)
	}
	if a.config.BatchSize != DefaultBatchSize || a.config.Marshaller == nil || a.config.Unmarshaller == nil || a.config.RequeueMarkerTTL != DefaultRequeueMarkerTTL {
		t.Errorf("defaults not set: %+v", a.config)
	}
}

func TestTopicInfo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	topic := redistest.RandomTopic("admin-info-")
	poisonTopic := redistest.RandomTopic("admin-info-poison-")
	keys := redrive.KeysFor(topic)

	createGroup(t, client, topic, "billing")
	createGroup(t, client, topic, "audit")
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for i := range 5 {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	// Two delayed messages, the earlier due in an hour.
	due := time.Now().Add(time.Hour)
	for _, d := range []time.Time{due.Add(time.Hour), due} {
		m := message.NewMessage(watermill.NewUUID(), nil)
		delay.Message(m, delay.Until(d))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	// billing reads three (pending) with two consumers; audit reads none.
	for _, c := range []struct {
		consumer string
		n        int64
	}{{"c1", 2}, {"c2", 1}} {
		if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: c.consumer, Streams: []string{topic, ">"}, Count: c.n}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// billing has one retry due and pending, and one waiting.
	retryMsg := message.NewMessage(watermill.NewUUID(), nil)
	retryMsg.Metadata.Set(middleware.MetadataAttempts, "2")
	fields, _ := marshaller.Marshal(topic, retryMsg)
	client.XAdd(ctx, &redis.XAddArgs{Stream: keys.GroupRetry("billing"), Values: fields})
	client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "c1", Streams: []string{keys.GroupRetry("billing"), ">"}})
	retryDue := time.Now().Add(30 * time.Minute).Truncate(time.Millisecond)
	client.ZAdd(ctx, keys.GroupRetryDelayed("billing"), redis.Z{Score: float64(retryDue.UnixMilli()), Member: delayedMember(t, "r1", retryMsg, topic)})
	// Poisoned: two in the internal poison stream, three in a poison topic
	// of which two come from this topic.
	addPoisoned(t, client, keys.Poison, poisoned{topic: topic, group: "billing", reason: redrive.ReasonUndecodable})
	addPoisoned(t, client, keys.Poison, poisoned{topic: topic, group: "audit", reason: redrive.ReasonExceededMaxDeliveries})
	addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "billing", reason: "max retries exceeded"})
	addPoisoned(t, client, poisonTopic, poisoned{topic: "other", handler: "x", reason: "max retries exceeded"})
	addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "audit", reason: "permanent error"})

	info, err := a.TopicInfo(ctx, topic, TopicInfoOptions{PoisonTopics: []string{poisonTopic}})
	if err != nil {
		t.Fatalf("TopicInfo: %v", err)
	}
	if !info.Exists || info.Length != 5 || info.Stream != topic {
		t.Errorf("stream: exists %v, length %d, want true, 5", info.Exists, info.Length)
	}
	// Due times are scored in milliseconds rounded up, and the publisher
	// counts the delay from its own clock, a moment after due was read.
	if next := info.Delayed.NextDueAt; info.Delayed.Count != 2 || next.Before(due) || next.Sub(due) > time.Second {
		t.Errorf("delayed = %+v, want 2 with next due %v", info.Delayed, due)
	}
	if info.Poisoned != 2 || info.PoisonStream != keys.Poison {
		t.Errorf("poisoned = %d in %q, want 2 in %q", info.Poisoned, info.PoisonStream, keys.Poison)
	}
	if len(info.PoisonTopics) != 1 || info.PoisonTopics[0].Count != 2 {
		t.Errorf("poison topics = %+v, want 2 from this topic", info.PoisonTopics)
	}
	if len(info.Groups) != 2 || info.Groups[0].Name != "audit" || info.Groups[1].Name != "billing" {
		t.Fatalf("groups = %+v, want audit and billing", info.Groups)
	}
	audit, billing := info.Groups[0], info.Groups[1]
	if audit.Pending != 0 || audit.Lag != 5 || len(audit.Consumers) != 0 || !audit.OldestPendingAt.IsZero() {
		t.Errorf("audit = %+v, want nothing pending, lag 5, no consumers", audit)
	}
	if billing.Pending != 3 || billing.Lag != 2 {
		t.Errorf("billing pending %d lag %d, want 3 and 2", billing.Pending, billing.Lag)
	}
	first, _ := client.XRangeN(ctx, topic, "-", "+", 1).Result()
	if billing.OldestPendingID != first[0].ID || billing.OldestPendingAt.IsZero() || billing.OldestPendingAge(time.Now()) < 0 {
		t.Errorf("billing oldest pending = %q at %v, want %q", billing.OldestPendingID, billing.OldestPendingAt, first[0].ID)
	}
	if len(billing.Consumers) != 2 || billing.Consumers[0].Name != "c1" || billing.Consumers[0].Pending != 2 || billing.Consumers[1].Pending != 1 {
		t.Errorf("billing consumers = %+v, want c1 with 2 and c2 with 1", billing.Consumers)
	}
	r := billing.Retry
	if r.Stream != keys.GroupRetry("billing") || r.Length != 1 || r.Pending != 1 || r.OldestPendingAt.IsZero() {
		t.Errorf("billing retry = %+v, want 1 due and pending", r)
	}
	if r.Delayed.Count != 1 || !r.Delayed.NextDueAt.Equal(retryDue) {
		t.Errorf("billing retry delayed = %+v, want 1 due at %v", r.Delayed, retryDue)
	}

	// A topic with nothing at all.
	empty, err := a.TopicInfo(ctx, redistest.RandomTopic("admin-none-"), TopicInfoOptions{})
	if err != nil {
		t.Fatalf("TopicInfo of a missing topic: %v", err)
	}
	if empty.Exists || empty.Length != 0 || len(empty.Groups) != 0 {
		t.Errorf("missing topic = %+v, want nothing", empty)
	}
}

func TestListAndShowPoisoned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 3) // small batches exercise paging
	stream := redistest.RandomTopic("admin-list-poison-")
	topicA, topicB := redistest.RandomTopic("admin-list-a-"), redistest.RandomTopic("admin-list-b-")

	old := strconv.FormatInt(time.Now().Add(-3*time.Hour).UnixMilli(), 10) + "-0"
	oldID, oldUUID := addPoisoned(t, client, stream, poisoned{id: old, topic: topicA, handler: "billing", reason: "max retries exceeded (5)", attempts: 6, lastError: "connection refused", payload: "secret A"})
	var ids []string
	for i := range 6 {
		topic := topicA
		if i%2 == 1 {
			topic = topicB
		}
		id, _ := addPoisoned(t, client, stream, poisoned{topic: topic, handler: "h", reason: "permanent error: bad input " + strconv.Itoa(i), attempts: 1, lastError: "bad"})
		ids = append(ids, id)
	}

	list, err := a.ListPoisoned(ctx, stream, ListPoisonedOptions{})
	if err != nil {
		t.Fatalf("ListPoisoned: %v", err)
	}
	if list.Total != 7 || len(list.Messages) != 7 || list.Next != "" {
		t.Fatalf("list: total %d, %d messages, next %q; want 7, 7, none", list.Total, len(list.Messages), list.Next)
	}
	m := list.Messages[0]
	if m.ID != oldID || m.UUID != oldUUID || m.OriginalTopic != topicA || m.Handler != "billing" || m.Attempts != 6 ||
		m.Reason != "max retries exceeded (5)" || m.LastError != "connection refused" || m.FirstFailedAt.IsZero() || m.LastFailedAt.IsZero() {
		t.Errorf("first message = %+v", m)
	}
	// Written as versions before the reason code did: derived from the text.
	if m.ReasonCode != redrive.PoisonReasonMaxRetries {
		t.Errorf("ReasonCode of an entry without one = %q, want %q from its reason", m.ReasonCode, redrive.PoisonReasonMaxRetries)
	}
	if time.Since(m.PoisonedAt) < 3*time.Hour-time.Minute {
		t.Errorf("PoisonedAt = %v, want about 3h ago (the entry ID's time)", m.PoisonedAt)
	}
	if m.Payload != nil || m.Metadata != nil || m.History != nil {
		t.Error("list includes payload, metadata or history; it must stay light and never show payloads")
	}
	if m.PayloadSize != len("secret A") {
		t.Errorf("PayloadSize = %d, want %d", m.PayloadSize, len("secret A"))
	}

	// Filters.
	for _, tc := range []struct {
		name string
		sel  Selector
		want int
	}{
		{"reason, any case", Selector{ReasonContains: "PERMANENT"}, 6},
		{"topic", Selector{OriginalTopic: topicB}, 3},
		{"topic and reason", Selector{OriginalTopic: topicA, ReasonContains: "max retries"}, 1},
		{"older than", Selector{OlderThan: time.Hour}, 1},
		{"nothing", Selector{ReasonContains: "no such reason"}, 0},
	} {
		got, err := a.ListPoisoned(ctx, stream, ListPoisonedOptions{Filter: tc.sel})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got.Messages) != tc.want {
			t.Errorf("%s: %d messages, want %d", tc.name, len(got.Messages), tc.want)
		}
	}

	// Paging.
	page1, err := a.ListPoisoned(ctx, stream, ListPoisonedOptions{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(page1.Messages) != 4 || page1.Next != ids[2] {
		t.Fatalf("page 1: %d messages, next %q; want 4 and %q", len(page1.Messages), page1.Next, ids[2])
	}
	page2, err := a.ListPoisoned(ctx, stream, ListPoisonedOptions{Limit: 4, After: page1.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(page2.Messages) != 3 || page2.Messages[0].ID != ids[3] || page2.Next != "" {
		t.Errorf("page 2: %d messages from %q, next %q; want 3 from %q and none", len(page2.Messages), page2.Messages[0].ID, page2.Next, ids[3])
	}

	// Show: everything, the payload only when asked.
	shown, err := a.ShowPoisoned(ctx, stream, oldID, ShowOptions{})
	if err != nil {
		t.Fatalf("ShowPoisoned: %v", err)
	}
	if shown.Payload != nil {
		t.Error("ShowPoisoned without Payload returned the payload")
	}
	if shown.Metadata["custom"] != "kept" || shown.Metadata[wmiddleware.PoisonedHandlerKey] != "billing" || len(shown.History) != 6 {
		t.Errorf("shown metadata %v, history %d; want all metadata and 6 attempts", shown.Metadata, len(shown.History))
	}
	withPayload, err := a.ShowPoisoned(ctx, stream, oldID, ShowOptions{Payload: true})
	if err != nil || string(withPayload.Payload) != "secret A" {
		t.Errorf("ShowPoisoned with Payload = %q, %v; want the payload", withPayload.Payload, err)
	}
	if _, err := a.ShowPoisoned(ctx, stream, "1-1", ShowOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ShowPoisoned of a missing ID: err = %v, want ErrNotFound", err)
	}
	if _, err := a.ShowPoisoned(ctx, stream, "nope", ShowOptions{}); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("ShowPoisoned of a malformed ID: err = %v, want a clear error", err)
	}
}

func TestPoisonedUndecodable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	topic := redistest.RandomTopic("admin-raw-")
	keys := redrive.KeysFor(topic)
	createGroup(t, client, topic, "g")

	// What the Subscriber writes for an entry it cannot decode: a fresh
	// message with the poison metadata, plus the original fields.
	original := map[string]interface{}{"junk": "field", "payload": "raw payload"}
	raw, _ := msgpack.Marshal(original)
	md, _ := msgpack.Marshal(map[string]string{
		wmiddleware.ReasonForPoisonedKey:      redrive.ReasonUndecodable + ": no uuid",
		wmiddleware.PoisonedTopicKey:          topic,
		redrive.MetadataPoisonedConsumerGroup: "g",
	})
	rawID := client.XAdd(ctx, &redis.XAddArgs{Stream: keys.Poison, Values: map[string]interface{}{
		redrive.UUIDHeaderKey: "1-0", "payload": "raw payload", "metadata": md, redrive.RawFieldsField: raw,
	}}).Val()
	// Something else wrote garbage to the poison stream.
	garbageID := client.XAdd(ctx, &redis.XAddArgs{Stream: keys.Poison, Values: map[string]interface{}{"what": "ever"}}).Val()

	m, err := a.ShowPoisoned(ctx, keys.Poison, rawID, ShowOptions{Payload: true})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Undecodable || m.RawFields["junk"] != "field" || m.ConsumerGroup != "g" {
		t.Errorf("raw entry = %+v, want undecodable with its original fields", m)
	}
	g, err := a.ShowPoisoned(ctx, keys.Poison, garbageID, ShowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.DecodeError == "" {
		t.Errorf("garbage entry = %+v, want a decode error", g)
	}

	res, err := a.RequeuePoisoned(ctx, keys.Poison, Selector{All: true}, RequeueOptions{})
	if err != nil {
		t.Fatalf("RequeuePoisoned: %v", err)
	}
	if res.Requeued != 1 || res.Skipped != 1 {
		t.Fatalf("requeued %d skipped %d, want 1 and 1: %+v", res.Requeued, res.Skipped, res.Messages)
	}
	// The original fields go back unchanged, to the group's retry stream.
	entries := client.XRange(ctx, keys.GroupRetry("g"), "-", "+").Val()
	if len(entries) != 1 || entries[0].Values["junk"] != "field" || entries[0].Values["payload"] != "raw payload" || len(entries[0].Values) != 2 {
		t.Errorf("retry stream = %+v, want the original fields", entries)
	}
	// The garbage stays, and can be purged.
	if n := xlen(t, client, keys.Poison); n != 1 {
		t.Errorf("poison stream has %d entries, want the undecodable one", n)
	}
	p, err := a.PurgePoisoned(ctx, keys.Poison, Selector{IDs: []string{garbageID}}, PurgeOptions{})
	if err != nil || p.Purged != 1 {
		t.Errorf("purge garbage: %+v, %v", p, err)
	}
}

func TestRequeueTargetsAndReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	poisonTopic := redistest.RandomTopic("admin-rq-poison-")
	topic := redistest.RandomTopic("admin-rq-")
	keys := redrive.KeysFor(topic)
	createGroup(t, client, topic, "billing")
	createGroup(t, client, topic, "audit")

	// The retry middleware names the handler; the router names the group
	// after the handler.
	byHandler, u1 := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "billing", subscriber: "redrive.Subscriber", reason: "max retries exceeded (5)", attempts: 6, lastError: "boom", requeues: 1})
	// The Subscriber names the group.
	byGroup, u2 := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, group: "audit", subscriber: "audit", reason: redrive.ReasonExceededMaxDeliveries})
	// A handler that is not a group of the topic: every group gets it back.
	unknown, u3 := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "not-a-group", reason: "permanent error"})
	// No original topic: cannot be requeued.
	noTopic, _ := addPoisoned(t, client, poisonTopic, poisoned{reason: "permanent error"})

	dry, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !dry.DryRun || dry.Matched != 4 || dry.Requeued != 3 || dry.Skipped != 1 {
		t.Fatalf("dry run = %+v, want 3 would-requeue and 1 skipped", dry)
	}
	want := map[string]struct{ status, group, target string }{
		byHandler: {StatusWouldRequeue, "billing", keys.GroupRetry("billing")},
		byGroup:   {StatusWouldRequeue, "audit", keys.GroupRetry("audit")},
		unknown:   {StatusWouldRequeue, "", keys.Stream},
		noTopic:   {StatusSkipped, "", ""},
	}
	for _, o := range dry.Messages {
		w := want[o.ID]
		if o.Status != w.status || o.Group != w.group || o.Target != w.target {
			t.Errorf("dry run of %s = %+v, want %+v", o.ID, o, w)
		}
	}
	if n := xlen(t, client, poisonTopic); n != 4 {
		t.Fatalf("dry run changed the poison stream: %d entries", n)
	}
	if xlen(t, client, keys.Stream) != 0 || xlen(t, client, keys.GroupRetry("billing")) != 0 {
		t.Fatal("dry run wrote to a target")
	}

	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{})
	if err != nil {
		t.Fatalf("requeue: %v", err)
	}
	if res.Requeued != 3 || res.Skipped != 1 || res.Gone != 0 {
		t.Fatalf("requeue = %+v", res)
	}
	left := client.XRange(ctx, poisonTopic, "-", "+").Val()
	if len(left) != 1 || left[0].ID != noTopic {
		t.Errorf("poison stream keeps %v, want only the skipped %s", left, noTopic)
	}
	check := func(stream, uuid string) *message.Message {
		t.Helper()
		msgs := readStream(t, client, stream)
		if len(msgs) != 1 || msgs[0].UUID != uuid {
			t.Fatalf("%s holds %d messages, want %s", stream, len(msgs), uuid)
		}
		return msgs[0]
	}
	m1 := check(keys.GroupRetry("billing"), u1)
	check(keys.GroupRetry("audit"), u2)
	check(keys.Stream, u3)

	// The retry state is reset, the history and other metadata kept, and
	// the requeue counted.
	for _, k := range []string{middleware.MetadataAttempts, middleware.MetadataFirstFailedAt, middleware.MetadataLastFailedAt,
		middleware.MetadataLastError, middleware.MetadataNextAttemptAt, wmiddleware.ReasonForPoisonedKey, wmiddleware.PoisonedTopicKey,
		wmiddleware.PoisonedHandlerKey, wmiddleware.PoisonedSubscriberKey, redrive.MetadataPoisonedConsumerGroup} {
		if _, ok := m1.Metadata[k]; ok {
			t.Errorf("requeued message keeps %s", k)
		}
	}
	if m1.Metadata.Get("custom") != "kept" || m1.Metadata.Get(middleware.MetadataHistory) == "" {
		t.Errorf("requeued message lost metadata: %v", m1.Metadata)
	}
	if m1.Metadata.Get(MetadataRequeueCount) != "2" {
		t.Errorf("requeue count = %q, want 2 (it was requeued once before)", m1.Metadata.Get(MetadataRequeueCount))
	}
	if at, err := time.Parse(time.RFC3339Nano, m1.Metadata.Get(MetadataRequeuedAt)); err != nil || time.Since(at) > time.Minute {
		t.Errorf("requeued at = %q, want about now", m1.Metadata.Get(MetadataRequeuedAt))
	}
	if st, err := middleware.ReadRetryState(m1.Metadata); err != nil || st.Attempts != 0 || len(st.History) != 6 {
		t.Errorf("retry state after requeue = %+v, %v; want 0 attempts and the 6-attempt history", st, err)
	}
	for _, o := range res.Messages {
		if o.Status == StatusRequeued && o.NewID == "" {
			t.Errorf("outcome %+v has no new entry ID", o)
		}
	}

	// Overrides: a group for all, or the topic stream for all.
	id1, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, group: "audit", reason: "x"})
	id2, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "billing", reason: "x"})
	res, err = a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{id1}}, RequeueOptions{Group: "billing"})
	if err != nil || res.Requeued != 1 || res.Messages[0].Target != keys.GroupRetry("billing") {
		t.Errorf("requeue to a chosen group = %+v, %v", res, err)
	}
	res, err = a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{id2}}, RequeueOptions{ToStream: true})
	if err != nil || res.Requeued != 1 || res.Messages[0].Target != keys.Stream {
		t.Errorf("requeue to the stream = %+v, %v", res, err)
	}
	if _, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{ToStream: true, Group: "x"}); err == nil {
		t.Error("Group and ToStream together: no error")
	}

	// A group of another adapter (watermill-redisstream, mid-migration)
	// exists on the topic but never reads a retry stream: the message goes
	// to the topic's stream rather than wait forever.
	if err := client.XGroupCreate(ctx, topic, "legacy", "0").Err(); err != nil {
		t.Fatal(err)
	}
	id3, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "legacy", reason: "x"})
	res, err = a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{id3}}, RequeueOptions{DryRun: true})
	if err != nil || res.Messages[0].Target != keys.Stream || !strings.Contains(res.Messages[0].Note, "reads no retry stream") {
		t.Errorf("requeue for a non-redrive group = %+v, %v; want the topic stream with a note", res.Messages, err)
	}
}

func TestRequeueSelectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 2)
	poisonTopic := redistest.RandomTopic("admin-sel-poison-")
	topicA, topicB := redistest.RandomTopic("admin-sel-a-"), redistest.RandomTopic("admin-sel-b-")

	oldID := strconv.FormatInt(time.Now().Add(-2*time.Hour).UnixMilli(), 10) + "-0"
	old, _ := addPoisoned(t, client, poisonTopic, poisoned{id: oldID, topic: topicA, reason: "timeout"})
	a1, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topicA, reason: "Connection Refused"})
	b1, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topicB, reason: "connection refused"})
	b2, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topicB, reason: "permanent error"})

	if _, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{}, RequeueOptions{}); err == nil {
		t.Fatal("an empty selector was accepted")
	}
	if _, err := a.PurgePoisoned(ctx, poisonTopic, Selector{}, PurgeOptions{}); err == nil {
		t.Fatal("an empty selector was accepted by purge")
	}
	if _, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{"bogus"}}, RequeueOptions{}); err == nil {
		t.Fatal("a malformed ID was accepted")
	}

	ids := func(res RequeueResult) []string {
		var out []string
		for _, o := range res.Messages {
			out = append(out, o.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		sel  Selector
		want []string
	}{
		{"older than", Selector{OlderThan: time.Hour}, []string{old}},
		{"reason", Selector{ReasonContains: "connection refused"}, []string{a1, b1}},
		{"topic", Selector{OriginalTopic: topicB}, []string{b1, b2}},
		{"topic and reason", Selector{OriginalTopic: topicB, ReasonContains: "refused"}, []string{b1}},
		{"ids", Selector{IDs: []string{b2, a1, a1}}, []string{a1, b2}},
		{"all", Selector{All: true}, []string{old, a1, b1, b2}},
	} {
		res, err := a.RequeuePoisoned(ctx, poisonTopic, tc.sel, RequeueOptions{DryRun: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ids(res); !slices.Equal(got, tc.want) {
			t.Errorf("%s: selected %v, want %v", tc.name, got, tc.want)
		}
	}

	// A real requeue by reason, then the IDs that are gone are reported.
	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{ReasonContains: "refused"}, RequeueOptions{})
	if err != nil || res.Requeued != 2 {
		t.Fatalf("requeue by reason = %+v, %v", res, err)
	}
	if xlen(t, client, topicA) != 1 || xlen(t, client, topicB) != 1 {
		t.Error("each topic should have got its message back")
	}
	res, err = a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{a1, b2}}, RequeueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requeued != 1 || !slices.Equal(res.NotFound, []string{a1}) {
		t.Errorf("requeue of a requeued ID = %+v, want b2 requeued and a1 not found", res)
	}
}

func TestRequeueProgressInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 10)
	poisonTopic := redistest.RandomTopic("admin-prog-poison-")
	topic := redistest.RandomTopic("admin-prog-")
	createGroup(t, client, topic, "g")

	// Add 35 entries in one pipeline.
	pipe := client.Pipeline()
	for range 35 {
		msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
		msg.Metadata.Set(wmiddleware.PoisonedTopicKey, topic)
		msg.Metadata.Set(wmiddleware.PoisonedHandlerKey, "g")
		msg.Metadata.Set(wmiddleware.ReasonForPoisonedKey, "r")
		f, _ := marshaller.Marshal(poisonTopic, msg)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: poisonTopic, Values: f})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var reports []Progress
	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{Progress: func(p Progress) { reports = append(reports, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requeued != 35 {
		t.Fatalf("requeued %d, want 35", res.Requeued)
	}
	if len(reports) != 4 {
		t.Fatalf("progress called %d times, want once per batch of 10 (4): %+v", len(reports), reports)
	}
	last := reports[len(reports)-1]
	if last.Total != 35 || last.Scanned != 35 || last.Done != 35 || reports[0].Done != 10 {
		t.Errorf("progress = %+v", reports)
	}
	if n := xlen(t, client, redrive.KeysFor(topic).GroupRetry("g")); n != 35 {
		t.Errorf("retry stream has %d, want 35", n)
	}

	// A cancelled context stops between batches and reports what was done.
	for range 25 {
		addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "g", reason: "r"})
	}
	cctx, cancel := context.WithCancel(ctx)
	purged, err := a.PurgePoisoned(cctx, poisonTopic, Selector{All: true}, PurgeOptions{Progress: func(p Progress) {
		if p.Done >= 10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || purged.Purged != 10 {
		t.Errorf("cancelled purge: purged %d, err %v; want 10 and context.Canceled", purged.Purged, err)
	}
	if n := xlen(t, client, poisonTopic); n != 15 {
		t.Errorf("poison stream has %d after a cancelled purge, want 15", n)
	}
}

func TestRequeueBadTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	poisonTopic := redistest.RandomTopic("admin-bad-poison-")
	good, bad := redistest.RandomTopic("admin-good-"), redistest.RandomTopic("admin-bad-")
	client.Set(ctx, bad, "not a stream", time.Hour) // the target is of another type
	defer client.Del(ctx, bad)

	badID, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: bad, reason: "r"})
	goodID, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: good, reason: "r"})
	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{})
	if err == nil {
		t.Fatal("no error for a target of the wrong type")
	}
	status := map[string]string{}
	for _, o := range res.Messages {
		status[o.ID] = o.Status
	}
	if status[badID] != StatusFailed || status[goodID] != StatusRequeued || res.Failed != 1 || res.Requeued != 1 {
		t.Errorf("outcomes = %+v, want the bad one failed and the good one requeued", res.Messages)
	}
	left := client.XRange(ctx, poisonTopic, "-", "+").Val()
	if len(left) != 1 || left[0].ID != badID {
		t.Errorf("poison stream keeps %v, want only the failed one", left)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 2)
	stream := redistest.RandomTopic("admin-purge-")
	topic := redistest.RandomTopic("admin-purge-t-")
	oldID := strconv.FormatInt(time.Now().Add(-48*time.Hour).UnixMilli(), 10) + "-0"
	old, _ := addPoisoned(t, client, stream, poisoned{id: oldID, topic: topic, reason: "x"})
	p1, _ := addPoisoned(t, client, stream, poisoned{topic: topic, reason: "permanent error: bad"})
	p2, _ := addPoisoned(t, client, stream, poisoned{topic: "other", reason: "permanent error: bad"})
	keep, _ := addPoisoned(t, client, stream, poisoned{topic: topic, reason: "timeout"})

	dry, err := a.PurgePoisoned(ctx, stream, Selector{ReasonContains: "permanent"}, PurgeOptions{DryRun: true})
	if err != nil || dry.Purged != 2 || dry.Messages[0].Status != StatusWouldPurge || xlen(t, client, stream) != 4 {
		t.Fatalf("dry purge = %+v, %v; want 2 would-purge and nothing deleted", dry, err)
	}
	res, err := a.PurgePoisoned(ctx, stream, Selector{ReasonContains: "permanent", OriginalTopic: topic}, PurgeOptions{})
	if err != nil || res.Purged != 1 || res.Messages[0].ID != p1 {
		t.Fatalf("purge by reason and topic = %+v, %v", res, err)
	}
	res, err = a.PurgePoisoned(ctx, stream, Selector{OlderThan: 24 * time.Hour}, PurgeOptions{})
	if err != nil || res.Purged != 1 || res.Messages[0].ID != old {
		t.Fatalf("purge by age = %+v, %v", res, err)
	}
	res, err = a.PurgePoisoned(ctx, stream, Selector{IDs: []string{p2, p1}}, PurgeOptions{})
	if err != nil || res.Purged != 1 || !slices.Equal(res.NotFound, []string{p1}) {
		t.Fatalf("purge by ID = %+v, %v", res, err)
	}
	left := client.XRange(ctx, stream, "-", "+").Val()
	if len(left) != 1 || left[0].ID != keep {
		t.Fatalf("left %v, want only %s", left, keep)
	}
	res, err = a.PurgePoisoned(ctx, stream, Selector{All: true}, PurgeOptions{})
	if err != nil || res.Purged != 1 || xlen(t, client, stream) != 0 {
		t.Fatalf("purge all = %+v, %v", res, err)
	}
}

func TestDelayedListAndRunNow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 2)
	topic := redistest.RandomTopic("admin-delayed-")
	keys := redrive.KeysFor(topic)
	createGroup(t, client, topic, "billing")

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var uuids []string
	for i := range 5 {
		m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
		delay.Message(m, delay.For(time.Duration(i+1)*time.Hour))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, m.UUID)
	}
	retry := message.NewMessage(watermill.NewUUID(), nil)
	retry.Metadata.Set(middleware.MetadataAttempts, "3")
	retry.Metadata.Set(middleware.MetadataLastError, "boom")
	client.ZAdd(ctx, keys.GroupRetryDelayed("billing"), redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: delayedMember(t, "retry-1", retry, topic)})

	sets, err := a.DelayedSets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0] != TopicDelayedSet(topic) || sets[1] != GroupDelayedSet(topic, "billing") {
		t.Fatalf("sets = %+v", sets)
	}
	list, err := a.ListDelayed(ctx, sets[0], ListDelayedOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if list.Total != 5 || len(list.Messages) != 3 || list.Messages[0].UUID != uuids[0] || list.Messages[2].UUID != uuids[2] {
		t.Fatalf("list = %+v, want the 3 soonest of 5", list)
	}
	if list.Messages[0].ID == "" || !list.Messages[0].DueAt.Before(list.Messages[1].DueAt) {
		t.Errorf("list entries = %+v, want IDs and rising due times", list.Messages)
	}
	gl, err := a.ListDelayed(ctx, sets[1], ListDelayedOptions{})
	if err != nil || len(gl.Messages) != 1 || gl.Messages[0].ID != "retry-1" || gl.Messages[0].Attempts != 3 || gl.Messages[0].LastError != "boom" || gl.Messages[0].Group != "billing" {
		t.Fatalf("group list = %+v, %v", gl, err)
	}

	// Run one now by ID, with no mover running: it is in the stream at once.
	target := list.Messages[1]
	res, err := a.RunDelayedNow(ctx, sets[0], RunNowOptions{IDs: []string{target.ID, "missing"}})
	if err != nil || res.Moved != 1 || !slices.Equal(res.NotFound, []string{"missing"}) {
		t.Fatalf("run now by ID = %+v, %v", res, err)
	}
	msgs := readStream(t, client, topic)
	if len(msgs) != 1 || msgs[0].UUID != target.UUID {
		t.Fatalf("stream = %v, want %s", msgs, target.UUID)
	}
	if _, err := a.RunDelayedNow(ctx, sets[0], RunNowOptions{IDs: []string{"missing"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("run now of a missing ID: %v, want ErrNotFound", err)
	}
	if _, err := a.RunDelayedNow(ctx, sets[0], RunNowOptions{}); err == nil {
		t.Error("run now with nothing chosen: no error")
	}

	// The group's retry goes to the group's retry stream only.
	res, err = a.RunDelayedNow(ctx, sets[1], RunNowOptions{All: true})
	if err != nil || res.Moved != 1 {
		t.Fatalf("run group now = %+v, %v", res, err)
	}
	if r := readStream(t, client, keys.GroupRetry("billing")); len(r) != 1 || r[0].UUID != retry.UUID || r[0].Metadata.Get(middleware.MetadataAttempts) != "3" {
		t.Errorf("retry stream = %v, want the retry as it was", r)
	}

	// All, in batches of 2, with progress.
	var reports []Progress
	res, err = a.RunDelayedNow(ctx, sets[0], RunNowOptions{All: true, Progress: func(p Progress) { reports = append(reports, p) }})
	if err != nil || res.Moved != 4 || len(reports) != 2 {
		t.Fatalf("run all now = %+v, %v, progress %+v", res, err, reports)
	}
	if n := client.ZCard(ctx, keys.Delayed).Val(); n != 0 {
		t.Errorf("delayed set keeps %d", n)
	}
	if n := xlen(t, client, topic); n != 5 {
		t.Errorf("stream has %d, want all 5", n)
	}
}

// A delayed-message mover running at the same time never makes a message
// enter the stream twice.
func TestRunNowWithMover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 7)
	topic := redistest.RandomTopic("admin-mover-")
	keys := redrive.KeysFor(topic)

	pipe := client.Pipeline()
	due := float64(time.Now().Add(-time.Second).UnixMilli()) // due already
	for i := range 200 {
		m := message.NewMessage(watermill.NewUUID(), nil)
		pipe.ZAdd(ctx, keys.Delayed, redis.Z{Score: due, Member: delayedMember(t, "d"+strconv.Itoa(i), m, topic)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	mover, err := redrive.NewDelayedMover(redrive.DelayedMoverConfig{Client: client, Delayed: keys.Delayed, Stream: keys.Stream, BatchSize: 5, PollInterval: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := mover.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mover.Stop()
	res, err := a.RunDelayedNow(ctx, TopicDelayedSet(topic), RunNowOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, waitTimeout, func() bool { return client.ZCard(ctx, keys.Delayed).Val() == 0 }, "the delayed set to empty")
	if n := xlen(t, client, topic); n != 200 {
		t.Errorf("stream has %d entries, want each of the 200 once (run now moved %d, mover the rest)", n, res.Moved)
	}
}
