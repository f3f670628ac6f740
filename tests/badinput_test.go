package tests

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/hashslot"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// badInputTopicList returns awkward topic names: braces that make a hash
// tag and braces that do not, spaces, unicode, colons, glob characters,
// binary bytes, and 1 KB.
func badInputTopicList() []string {
	return []string{
		"brace{tag}topic",
		"{already.tagged}.orders",
		"{}empty-tag",
		"close}brace",
		"open{brace",
		"with spaces in it",
		"ünïcødé/日本語/🚀",
		"colons:a:b:c:",
		`glob*?[chars]\`,
		"nul\x00and\xffbytes",
		strings.Repeat("k", 1024),
	}
}

// badInputTopics makes each awkward name unique to this run, keeping its
// shape (the 1 KB one stays 1024 bytes).
func badInputTopics() map[string]string {
	out := map[string]string{}
	for i, name := range badInputTopicList() {
		suffix := redistest.RandomTopic("-")
		topic := name + suffix
		if len(name) == 1024 {
			topic = name[:1024-len(suffix)] + suffix
		}
		out[fmt.Sprintf("%02d_%.20q", i, name)] = topic
	}
	return out
}

// TestBadInputTopicNames runs every message path on awkward topic names on
// the shared server. TestCluster runs the same on a cluster.
func TestBadInputTopicNames(t *testing.T) {
	badInputTopicNames(t, redistest.NewClient(t))
}

// badInputTopicNames: for each awkward topic, publish, subscribe, retries,
// poison and delayed messages work, every stream decodes, and every key
// redrive created for the topic (found with SCAN, on every master of a
// cluster) is in the topic's slot; on a cluster CLUSTER KEYSLOT says so and
// the key is on the master serving that slot.
func badInputTopicNames(t *testing.T, client redis.UniversalClient) {
	for name, topic := range badInputTopics() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			deleteFlowKeys(t, client, topic)
			group := "g{a} b:ü"
			app := startFlowApp(t, client, topic, flowOptions{Group: group})
			app.runAllPaths([]byte(" tail"))
			parked, waiting := newFlowMessage(flowParked, nil), newFlowMessage(flowOK, nil)
			app.mustPublish(0, parked)
			app.mustPublish(time.Hour, waiting)
			app.waitHandled(parked)
			app.checkStreamsDecode()
			badInputCheckKeys(t, client, topic, group)
		})
	}
}

// badInputCheckKeys checks the keys found for topic after a flowApp ran
// every path (with a parked retry and a message delayed an hour): exactly
// the layout's keys, all in the topic's slot.
func badInputCheckKeys(t *testing.T, client redis.UniversalClient, topic, group string) {
	t.Helper()
	ctx := context.Background()
	keys := redrive.KeysFor(topic)
	want := []string{keys.Stream, keys.Delayed, keys.Poison, keys.GroupRetry(group), keys.GroupRetryDelayed(group)}
	found := scanKeysContaining(ctx, client, topic)
	var names []string
	for _, k := range found {
		names = append(names, k.key)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("keys for %.60q:\n got %q\nwant %q", topic, names, want)
	}
	cc, isCluster := client.(*redis.ClusterClient)
	if !isCluster {
		for _, k := range found {
			if hashslot.Of(k.key) != hashslot.Of(topic) {
				t.Errorf("key %.80q hashes to slot %d, topic %.60q to %d", k.key, hashslot.Of(k.key), topic, hashslot.Of(topic))
			}
		}
		return
	}
	master, err := cc.MasterForKey(ctx, topic)
	if err != nil {
		t.Fatalf("master for %.60q: %v", topic, err)
	}
	slot, err := cc.ClusterKeySlot(ctx, topic).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	for _, k := range found {
		if k.node != master.Options().Addr {
			t.Errorf("key %.80q is on %s, the topic's slot on %s", k.key, k.node, master.Options().Addr)
		}
		if s, err := cc.ClusterKeySlot(ctx, k.key).Result(); err != nil || s != slot {
			t.Errorf("CLUSTER KEYSLOT %.80q = %d (%v), topic's slot %d", k.key, s, err, slot)
		}
	}
}

// TestBadInputConfigs: empty and invalid configurations are refused with an
// error naming the field.
func TestBadInputConfigs(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Addr()}) // no I/O here
	defer client.Close()
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{redistest.Addr()}})
	defer cluster.Close()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	pubCases := map[string]redrive.PublisherConfig{
		"Client":          {},
		"Maxlens":         {Client: client, Maxlens: map[string]int64{"t": -1}},
		"DefaultMaxlen":   {Client: client, DefaultMaxlen: -1},
		"MaxPipelineSize": {Client: client, MaxPipelineSize: -1},
		"Pipelines":       {Client: client, Pipelines: -3},
		"WaitReplicas":    {Client: client, WaitReplicas: -1},
		"WaitTimeout":     {Client: client, WaitTimeout: -time.Second},
		"WaitTimeout ":    {Client: client, WaitReplicas: 1, WaitTimeout: time.Microsecond},
		"WaitTimeout  ":   {Client: client, WaitReplicas: 1, WaitTimeout: 5 * time.Second}, // ReadTimeout is 3 s
	}
	for field, c := range pubCases {
		_, err := redrive.NewPublisher(c, nil)
		badInputWantField(t, err, "PublisherConfig."+strings.TrimSpace(field))
	}

	subCases := map[string]redrive.SubscriberConfig{
		"Client":           {},
		"BlockTime":        {Client: client, BlockTime: -time.Second},
		"ClaimInterval":    {Client: client, ClaimInterval: -1},
		"MaxIdleTime":      {Client: client, MaxIdleTime: -1},
		"ClaimBatchSize":   {Client: client, ClaimBatchSize: -1},
		"ReadBatchSize":    {Client: client, ReadBatchSize: -1},
		"MaxInFlight":      {Client: client, MaxInFlight: -1},
		"AckBatchSize":     {Client: client, AckBatchSize: -1},
		"NackResendSleep":  {Client: client, NackResendSleep: -5 * time.Millisecond},
		"MaxDeliveries":    {Client: client, MaxDeliveries: -2},
		"DelayedMaxlen":    {Client: client, DelayedMaxlen: -1},
		"DelayedBatchSize": {Client: client, DelayedBatchSize: -1},
		"OldestId":         {Client: client, OldestId: "yesterday"},
		"FanOutOldestId":   {Client: client, FanOutOldestId: "latest"},
		"CloseTimeout":     {Client: client, CloseTimeout: -1},
	}
	for field, c := range subCases {
		_, err := redrive.NewSubscriber(c, nil)
		badInputWantField(t, err, "SubscriberConfig."+field)
	}

	keys := redrive.KeysFor("t")
	moverCases := map[string]redrive.DelayedMoverConfig{
		"DelayedMoverConfig.Client":       {},
		"DelayedMoverConfig.Delayed":      {Client: client, Stream: "t"},
		"DelayedMoverConfig.Stream":       {Client: client, Delayed: keys.Delayed},
		"DelayedMoverConfig.PollInterval": {Client: client, Delayed: keys.Delayed, Stream: "t", PollInterval: -1},
		"DelayedMoverConfig.BatchSize":    {Client: client, Delayed: keys.Delayed, Stream: "t", BatchSize: -1},
		"DelayedMoverConfig.Maxlen":       {Client: client, Delayed: keys.Delayed, Stream: "t", Maxlen: -1},
		// On a cluster the two keys must share a slot.
		"different cluster slots": {Client: cluster, Delayed: redrive.KeysFor("other").Delayed, Stream: "t"},
	}
	for want, c := range moverCases {
		_, err := redrive.NewDelayedMover(c, nil)
		badInputWantField(t, err, want)
	}

	retryCases := map[string]middleware.RetryConfig{
		"Publisher":           {},
		"PoisonTopic":         {Publisher: pub},
		"MaxRetries":          {Publisher: pub, PoisonTopic: "p", MaxRetries: -2},
		"InitialInterval":     {Publisher: pub, PoisonTopic: "p", InitialInterval: -1},
		"MaxInterval":         {Publisher: pub, PoisonTopic: "p", InitialInterval: time.Minute, MaxInterval: time.Second},
		"Multiplier":          {Publisher: pub, PoisonTopic: "p", Multiplier: 0.5},
		"RandomizationFactor": {Publisher: pub, PoisonTopic: "p", RandomizationFactor: 1},
		"MaxElapsedTime":      {Publisher: pub, PoisonTopic: "p", MaxElapsedTime: -1},
		"MaxErrorLength":      {Publisher: pub, PoisonTopic: "p", MaxErrorLength: -1},
		"HistoryLength":       {Publisher: pub, PoisonTopic: "p", HistoryLength: -1},
		"RequeueTimeout":      {Publisher: pub, PoisonTopic: "p", RequeueTimeout: -1},
	}
	for field, c := range retryCases {
		_, err := middleware.NewRetry(c, nil)
		badInputWantField(t, err, "RetryConfig."+field)
	}

	if err := pub.Publish("", message.NewMessage("u", nil)); err == nil || !strings.Contains(err.Error(), "topic") {
		t.Errorf("Publish to an empty topic: %v, want an error about the topic", err)
	}
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "topic") {
		t.Errorf("Subscribe to an empty topic: %v, want an error about the topic", err)
	}
}

func badInputWantField(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: invalid value accepted", field)
		return
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("%s: error %q does not name the field", field, err)
	}
}

// TestBadInputHugePayload: a 10 MB payload of random bytes goes through
// every path (plain, retried, poisoned, delayed) unchanged, on a server of
// the test's own.
func TestBadInputHugePayload(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	client := srv.Client(t)
	payload := make([]byte, 10<<20)
	_, _ = rand.Read(payload)
	app := startFlowApp(t, client, "huge-"+watermill.NewShortUUID(), flowOptions{})
	app.runAllPaths(payload)
	app.checkStreamsDecode()
}

// TestBadInputThousandsOfMetadataKeys: a message with 10,000 metadata keys
// (empty, binary, unicode, long) goes through every path with each key and
// value intact.
func TestBadInputThousandsOfMetadataKeys(t *testing.T) {
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("metadata-")
	deleteFlowKeys(t, client, topic)
	md := message.Metadata{"": "empty key", "empty value": "", "bin\x00\xff": "\x00\x01\xfe", "ünï": "日本語"}
	md["long"] = strings.Repeat("v", 64<<10)
	for i := range 10000 {
		md[fmt.Sprintf("key-%05d", i)] = fmt.Sprintf("value %d", i)
	}
	app := startFlowApp(t, client, topic, flowOptions{})
	ok, flaky, doomed, perm, delayed := newFlowMessage(flowOK, nil), newFlowMessage(flowFlaky, nil),
		newFlowMessage(flowDoomed, nil), newFlowMessage(flowPerm, nil), newFlowMessage(flowOK, nil)
	all := []*message.Message{ok, flaky, doomed, perm, delayed}
	for _, m := range all {
		for k, v := range md {
			m.Metadata.Set(k, v)
		}
	}
	app.mustPublish(0, ok, flaky, doomed, perm)
	app.mustPublish(200*time.Millisecond, delayed)
	app.waitHandled(ok, flaky, delayed)
	app.waitPoisoned(doomed, perm)
	app.checkPaths(ok, flaky, doomed, perm, delayed)
	app.checkStreamsDecode()

	check := func(what string, got message.Metadata) {
		t.Helper()
		for k, v := range md {
			if got[k] != v {
				t.Errorf("%s: metadata %.20q = %.20q, want %.20q", what, k, got[k], v)
				return
			}
		}
	}
	for _, m := range []*message.Message{ok, flaky, delayed} {
		check("delivered "+string(m.Payload), app.handledMsg(m.UUID).Metadata)
	}
	for _, m := range []*message.Message{doomed, perm} {
		check("poisoned "+string(m.Payload), app.poisonMsg(m.UUID).Metadata)
	}
}

// TestBadInputRejectedBeforeWriting: a message that cannot be written (a
// reserved metadata key, unreadable delay metadata) fails the whole Publish
// call with a clear error before anything reaches Redis: no partial batch,
// no corrupt entry.
func TestBadInputRejectedBeforeWriting(t *testing.T) {
	ctx := context.Background()
	client := redistest.NewClient(t)
	pub := newPublisher(t, client)
	cases := map[string]struct {
		key, value, wantErr string
	}{
		"reserved UUID key": {redrive.UUIDHeaderKey, "forged", "reserved"},
		"bad delayed_for":   {delay.DelayedForKey, "soon", delay.DelayedForKey},
		"bad delayed_until": {delay.DelayedUntilKey, "tomorrow", delay.DelayedUntilKey},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			topic := redistest.RandomTopic("rejected-")
			deleteFlowKeys(t, client, topic)
			good := newMessages("good", 3)
			delayedGood := message.NewMessage(watermill.NewUUID(), []byte("later"))
			delay.Message(delayedGood, delay.For(time.Hour))
			bad := message.NewMessage(watermill.NewUUID(), []byte("bad"))
			bad.Metadata.Set(c.key, c.value)
			err := pub.Publish(topic, append(good, delayedGood, bad)...)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), bad.UUID) {
				t.Fatalf("Publish: %v, want an error naming the message and %q", err, c.wantErr)
			}
			if n, err := client.XLen(ctx, topic).Result(); err != nil || n != 0 {
				t.Errorf("stream holds %d entries (%v), want 0", n, err)
			}
			if n, err := client.ZCard(ctx, redrive.KeysFor(topic).Delayed).Result(); err != nil || n != 0 {
				t.Errorf("delayed set holds %d members (%v), want 0", n, err)
			}
			// The publisher is not stuck: the good messages go through alone.
			publish(t, pub, topic, good...)
			if n, _ := client.XLen(ctx, topic).Result(); n != 3 {
				t.Errorf("stream holds %d entries after a good publish, want 3", n)
			}
		})
	}
}
