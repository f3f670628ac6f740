package tests

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// newTrimTopic returns a client of the shared Redis and a new topic whose
// keys are deleted when the test ends.
func newTrimTopic(t *testing.T, prefix string) (*redis.Client, string) {
	t.Helper()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic(prefix)
	deleteKeysAfter(t, client, topic)
	return client, topic
}

func createGroupAt(t *testing.T, client redis.UniversalClient, stream, group, start string) {
	t.Helper()
	if err := client.XGroupCreateMkStream(context.Background(), stream, group, start).Err(); err != nil {
		t.Fatalf("XGROUP CREATE %s %s %s: %v", stream, group, start, err)
	}
}

// streamIDs returns the IDs of every entry of stream.
func streamIDs(t *testing.T, client redis.UniversalClient, stream string) []string {
	t.Helper()
	msgs, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func trim(t *testing.T, client redis.UniversalClient, stream string, retain time.Duration) redrive.TrimResult {
	t.Helper()
	r, err := redrive.TrimStream(context.Background(), client, stream, retain, false)
	if err != nil {
		t.Fatalf("TrimStream: %v", err)
	}
	return r
}

func groupResult(t *testing.T, r redrive.TrimResult, group string) redrive.GroupRetention {
	t.Helper()
	for _, g := range r.Groups {
		if g.Group == group {
			return g
		}
	}
	t.Fatalf("no group %q in %+v", group, r)
	return redrive.GroupRetention{}
}

// A group far behind keeps its pending and unread entries while the entries
// every group finished with go.
func TestTrimTwoGroupsOneFarBehind(t *testing.T) {
	t.Parallel()
	client, stream := newTrimTopic(t, "trim-behind-")
	createGroupAt(t, client, stream, "fast", "0")
	createGroupAt(t, client, stream, "slow", "0")
	ids := redistest.AddEntriesAt(t, client, stream, 1000, 100)

	redistest.Ack(t, client, stream, "fast", redistest.ReadGroup(t, client, stream, "fast", 100)...)
	slowRead := redistest.ReadGroup(t, client, stream, "slow", 30)
	redistest.Ack(t, client, stream, "slow", slowRead[:10]...)
	redistest.Ack(t, client, stream, "slow", slowRead[15:20]...) // acked after a pending one: must stay

	r := trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 10 || r.TrimBefore != ids[10] {
		t.Fatalf("trimmed %d before %q, want 10 before %q (slow's oldest pending)", r.Trimmed, r.TrimBefore, ids[10])
	}
	sameSet(t, "entries left", streamIDs(t, client, stream), ids[10:])
	slow := groupResult(t, r, "slow")
	if !slow.HoldsBack || slow.Pending != 15 || slow.Unread != 70 || slow.Retained != 85 || slow.NeededFrom != ids[10] {
		t.Fatalf("slow group report %+v: want holding back 15 pending and 70 unread from %s", slow, ids[10])
	}
	if fast := groupResult(t, r, "fast"); fast.HoldsBack || fast.Retained != 0 {
		t.Fatalf("fast group report %+v: want holding nothing back", fast)
	}

	// Every pending entry of slow can still be claimed with its fields, and
	// every unread one is still delivered.
	claimed, err := client.XClaim(context.Background(), &redis.XClaimArgs{
		Stream: stream, Group: "slow", Consumer: "c2", Messages: slowRead[10:15],
	}).Result()
	if err != nil || len(claimed) != 5 || len(claimed[0].Values) == 0 {
		t.Fatalf("claim slow's pending entries after trimming: %v %v", claimed, err)
	}
	sameSet(t, "slow's unread entries", redistest.ReadGroup(t, client, stream, "slow", 1000), ids[30:])

	// Once slow has acked everything, the rest goes too.
	redistest.Ack(t, client, stream, "slow", ids[10:]...)
	r = trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 90 || r.Length != 0 {
		t.Fatalf("after slow caught up: trimmed %d, %d left; want 90 and 0", r.Trimmed, r.Length)
	}
}

// A group created at "0" and never read blocks all trimming; one created
// at "$" only needs what came after it.
func TestTrimGroupNeverRead(t *testing.T) {
	t.Parallel()
	client, stream := newTrimTopic(t, "trim-never-read-")
	createGroupAt(t, client, stream, "reader", "0")
	before := redistest.AddEntriesAt(t, client, stream, 1000, 20)
	createGroupAt(t, client, stream, "late", "$")
	after := redistest.AddEntriesAt(t, client, stream, 2000, 20)
	redistest.Ack(t, client, stream, "reader", redistest.ReadGroup(t, client, stream, "reader", 100)...)

	r := trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 20 {
		t.Fatalf("trimmed %d, want the 20 entries added before the '$' group was created", r.Trimmed)
	}
	sameSet(t, "entries left", streamIDs(t, client, stream), after)
	if late := groupResult(t, r, "late"); !late.HoldsBack || late.Unread != 20 || late.Pending != 0 {
		t.Fatalf("late group report %+v: want 20 unread held back", late)
	}
	_ = before

	createGroupAt(t, client, stream, "never", "0")
	r = trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 0 || r.TrimBefore != "0-1" {
		t.Fatalf("with a group at 0 that never read: trimmed %d before %q, want nothing", r.Trimmed, r.TrimBefore)
	}
	if never := groupResult(t, r, "never"); !never.HoldsBack || never.Unread != 20 {
		t.Fatalf("never-read group report %+v: want all 20 held back", never)
	}
}

// A stream without consumer groups (fan-out only) is never trimmed, and a
// stream that does not exist is no error.
func TestTrimNoGroups(t *testing.T) {
	t.Parallel()
	client, stream := newTrimTopic(t, "trim-fanout-")
	r := trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 0 || r.TrimBefore != "" || r.Length != 0 {
		t.Fatalf("missing stream: %+v", r)
	}
	redistest.AddEntriesAt(t, client, stream, 1000, 10)
	r = trim(t, client, stream, time.Millisecond)
	if r.Trimmed != 0 || r.TrimBefore != "" || r.Length != 10 {
		t.Fatalf("stream without groups: %+v, want untouched", r)
	}
}

// Entries every group finished with stay for RetainAcked.
func TestTrimRetainAcked(t *testing.T) {
	t.Parallel()
	client, stream := newTrimTopic(t, "trim-retain-")
	createGroupAt(t, client, stream, "g", "0")
	now := time.Now()
	old := redistest.AddEntriesAt(t, client, stream, now.Add(-2*time.Hour).UnixMilli(), 10)
	recent := redistest.AddEntriesAt(t, client, stream, now.Add(-10*time.Minute).UnixMilli(), 10)
	redistest.Ack(t, client, stream, "g", redistest.ReadGroup(t, client, stream, "g", 100)...)

	r := trim(t, client, stream, time.Hour)
	if r.Trimmed != 10 {
		t.Fatalf("trimmed %d, want the 10 entries older than an hour", r.Trimmed)
	}
	sameSet(t, "entries left", streamIDs(t, client, stream), recent)
	if g := groupResult(t, r, "g"); g.HoldsBack {
		t.Fatalf("group that acked everything reported as holding back: %+v", g)
	}
	_ = old
	if got := time.Since(r.Cutoff); got < 59*time.Minute || got > 2*time.Hour {
		t.Fatalf("cutoff %s is %s ago, want about an hour", r.Cutoff, got)
	}

	dry, err := redrive.TrimStream(context.Background(), client, stream, time.Millisecond, true)
	if err != nil || dry.Trimmed != 0 || dry.Length != 10 || dry.TrimBefore == "" {
		t.Fatalf("dry run: %+v %v, want nothing removed and a trim point", dry, err)
	}
	if _, err := redrive.TrimStream(context.Background(), client, stream, -time.Second, false); err == nil {
		t.Fatal("negative retention accepted")
	}
}

// Many subscribers of several groups trim the same stream at once while
// messages flow: every group still gets every message, and the stream is
// trimmed as the groups finish.
func TestTrimConcurrentSubscribersWhileTrafficFlows(t *testing.T) {
	t.Parallel()
	client, topic := newTrimTopic(t, "trim-concurrent-")
	groups := []string{"g1", "g2", "g3"}
	const perGroup = 3
	const messages = 3000
	collectors := map[string][]*collector{}
	for _, g := range groups {
		for range perGroup {
			sub := newSubscriber(t, redrive.SubscriberConfig{
				Client:        client,
				ConsumerGroup: g,
				RetainAcked:   time.Millisecond,
				TrimInterval:  20 * time.Millisecond,
			}, nil)
			collectors[g] = append(collectors[g], collect(subscribe(t, sub, topic)))
		}
	}
	pub := newPublisher(t, client)
	sent := redistest.PublishConcurrently(t, pub, topic, 8, messages/8, func(_, _ int) int { return 1 })
	if sent != messages {
		t.Fatalf("published %d, want %d", sent, messages)
	}
	var lastLength int64
	for _, g := range groups {
		redistest.WaitFor(t, waitTimeout, func() bool {
			n := 0
			for _, c := range collectors[g] {
				n += c.unique()
			}
			return n >= messages
		}, "group %s to get %d messages", g, messages)
	}
	// Distinct messages over a group's subscribers: every one arrived.
	for _, g := range groups {
		seen := map[string]bool{}
		for _, c := range collectors[g] {
			for _, id := range c.ids() {
				seen[id] = true
			}
		}
		if len(seen) != messages {
			t.Fatalf("group %s got %d distinct messages, want %d", g, len(seen), messages)
		}
	}
	// Once every group acked everything, the trimmers empty the stream.
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, err := client.XLen(context.Background(), topic).Result()
		lastLength = n
		return err == nil && n == 0
	}, "stream trimmed to 0 entries after every group acked (last length %d)", lastLength)
}

// A watermill-redisstream group beside redrive's: redrive's trimmers never
// remove what the redisstream group has not read and acked.
func TestTrimMixedFleetWithRedisstream(t *testing.T) {
	t.Parallel()
	client, topic := newTrimTopic(t, "trim-mixed-")
	rsSub := newRedisstreamSubscriber(t, "legacy")
	// The redisstream group exists (as its OldestId "0" would create it)
	// but does not read yet: its messages must wait for it.
	createGroupAt(t, client, topic, "legacy", "0")
	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: "modern", RetainAcked: time.Millisecond, TrimInterval: 20 * time.Millisecond,
	}, nil)
	got := collect(subscribe(t, sub, topic))
	pub := newPublisher(t, client)
	msgs := newMessages("mixed", 200)
	publish(t, pub, topic, msgs...)
	got.waitUnique(t, len(msgs))

	// redrive's group is done; redisstream's holds everything back.
	trimmer, err := redrive.NewTrimmer(redrive.TrimmerConfig{Client: client, Stream: topic, RetainAcked: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := trimmer.TrimOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Length != int64(len(msgs)) {
		t.Fatalf("stream has %d entries with the redisstream group unread, want %d", r.Length, len(msgs))
	}
	legacy := groupResult(t, r, "legacy")
	if !legacy.HoldsBack || legacy.Retained != int64(len(msgs)) {
		t.Fatalf("legacy group report %+v, want it holding %d back", legacy, len(msgs))
	}

	// Now redisstream reads them all, and redrive's trimmers clean up.
	rsMsgs, err := rsSub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("redisstream Subscribe: %v", err)
	}
	legacyGot := collect(rsMsgs)
	legacyGot.waitUnique(t, len(msgs))
	sameSet(t, "redisstream group's messages", legacyGot.ids(), uuids(msgs))
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, err := client.XLen(context.Background(), topic).Result()
		return err == nil && n == 0
	}, "stream trimmed once both groups acked")
}

// Pending entries of the group removed by a MAXLEN cap are acked away and
// reported in one log line with their count, not one line each.
func TestTrimmedAwayPendingEntriesAreLogged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, topic := newTrimTopic(t, "trim-maxlen-")
	logger := newRecordingLogger()
	defer logOnFailure(t, logger)
	config := redrive.SubscriberConfig{
		Client: client, ConsumerGroup: "g", MaxIdleTime: 100 * time.Millisecond, ClaimInterval: 50 * time.Millisecond,
	}
	if err := newSubscriber(t, config, nil).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	publish(t, newPublisher(t, client), topic, newMessages("capped", 5)...)
	// A consumer that died holding all five; then a cap drops them.
	if got := redistest.ReadGroup(t, client, topic, "g", 10); len(got) != 5 {
		t.Fatalf("dead consumer read %d, want 5", len(got))
	}
	if err := client.XTrimMaxLen(ctx, topic, 0).Err(); err != nil {
		t.Fatal(err)
	}
	subscribe(t, newSubscriber(t, config, logger), topic)
	redistest.WaitFor(t, waitTimeout, func() bool { return pendingCount(t, client, topic, "g") == 0 },
		"the trimmed pending entries to be acked away")
	lines := logger.matching("info", "deleted from the stream before they were acked")
	if len(lines) != 1 || lines[0].fields["count"] != 5 {
		t.Fatalf("log lines about trimmed entries: %+v, want one with count 5", lines)
	}
}

// The Trimmer service trims on its own every Interval until stopped, logs a
// group holding entries back once per HoldBackLogInterval, and reports each
// run to OnTrim.
func TestTrimmerService(t *testing.T) {
	t.Parallel()
	client, stream := newTrimTopic(t, "trim-service-")
	createGroupAt(t, client, stream, "done", "0")
	redistest.AddEntriesAt(t, client, stream, 1000, 10)
	createGroupAt(t, client, stream, "idle", "$")
	redistest.AddEntriesAt(t, client, stream, 2000, 5) // idle never reads these
	redistest.Ack(t, client, stream, "done", redistest.ReadGroup(t, client, stream, "done", 100)...)

	logger := newRecordingLogger()
	defer logOnFailure(t, logger)
	// OnTrim reports every run; the first two are checked, later ones
	// (the trimmer runs every 20 ms) are not waited for.
	runs := make(chan redrive.TrimResult, 2)
	trimmer, err := redrive.NewTrimmer(redrive.TrimmerConfig{
		Client: client, Stream: stream, RetainAcked: time.Millisecond, Interval: 20 * time.Millisecond,
		OnTrim: func(r redrive.TrimResult) {
			select {
			case runs <- r:
			default:
			}
		},
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := trimmer.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	nextRun := func(which string) redrive.TrimResult {
		t.Helper()
		select {
		case r := <-runs:
			return r
		case <-time.After(waitTimeout):
			t.Fatalf("the trimmer's %s run was not reported within %s", which, waitTimeout)
			return redrive.TrimResult{}
		}
	}
	if first := nextRun("first"); first.Trimmed != 10 || first.Length != 5 {
		t.Fatalf("first run: %+v, want the 10 entries both groups are done with removed", first)
	}
	if second := nextRun("second"); second.Trimmed != 0 || second.Length != 5 {
		t.Fatalf("second run: %+v, want nothing more removed", second)
	}
	trimmer.Stop()
	trimmer.Stop() // idempotent
	held := logger.matching("info", "holds entries older than the retention window back")
	if len(held) != 1 || held[0].fields["consumer_group"] != "idle" || held[0].fields["retained_entries"] != int64(5) {
		t.Fatalf("hold-back log lines: %+v, want one naming idle with 5 entries", held)
	}

	for _, bad := range []redrive.TrimmerConfig{
		{Stream: stream},
		{Client: client},
		{Client: client, Stream: stream, RetainAcked: -time.Second},
		{Client: client, Stream: stream, Interval: -time.Second},
	} {
		if _, err := redrive.NewTrimmer(bad, nil); err == nil {
			t.Errorf("NewTrimmer(%+v) accepted", bad)
		}
	}
}

// Where the server gives no lag (Redis 6.2; Redis 7 after a deletion inside
// the group's unread range, used here), the unread entries of a group that
// holds entries back are counted instead.
func TestTrimCountsUnreadWithoutLag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, stream := newTrimTopic(t, "trim-nolag-")
	createGroupAt(t, client, stream, "g", "0")
	ids := redistest.AddEntriesAt(t, client, stream, 1000, 30)
	redistest.Ack(t, client, stream, "g", redistest.ReadGroup(t, client, stream, "g", 10)...)
	if err := client.XDel(ctx, stream, ids[20]).Err(); err != nil {
		t.Fatal(err)
	}
	groups, err := client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("XINFO GROUPS lag after the deletion: %d", groups[0].Lag)

	r := trim(t, client, stream, time.Millisecond)
	g := groupResult(t, r, "g")
	if r.Trimmed != 10 || !g.HoldsBack || g.Unread != 19 || g.UnreadAtLeast || g.Retained != 19 {
		t.Fatalf("trimmed %d, group %+v: want 10 trimmed and 19 unread entries held back", r.Trimmed, g)
	}
}
