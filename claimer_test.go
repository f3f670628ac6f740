package redrive

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"
)

// fakeClaimTarget is a subscription with free slots that records what the
// claimer hands it and the entries it reports deleted.
type fakeClaimTarget struct {
	slots   chan struct{}
	stalled atomic.Bool

	mu          sync.Mutex
	accepted    map[string][]redis.XMessage
	trimmedAway int
}

func newFakeClaimTarget(slots int) *fakeClaimTarget {
	f := &fakeClaimTarget{slots: make(chan struct{}, slots), accepted: map[string][]redis.XMessage{}}
	for range slots {
		f.slots <- struct{}{}
	}
	return f
}

func (f *fakeClaimTarget) handlersStalled() bool { return f.stalled.Load() }

func (f *fakeClaimTarget) waitSlots(ctx context.Context, want int) int {
	select {
	case <-f.slots:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < want {
		select {
		case <-f.slots:
			n++
		default:
			return n
		}
	}
	return n
}

func (f *fakeClaimTarget) releaseSlots(n int) {
	for range n {
		f.slots <- struct{}{}
	}
}

func (f *fakeClaimTarget) accept(stream string, entry redis.XMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted[stream] = append(f.accepted[stream], entry)
}

func (f *fakeClaimTarget) noteTrimmedAway(_ string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trimmedAway += n
}

func (f *fakeClaimTarget) acceptedIDs(stream string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ids(f.accepted[stream])
}

const testMaxIdle = time.Minute

// startTestClaimer starts a claimer whose only pass is the one at start.
func startTestClaimer(t *testing.T, st serviceTopic, target *fakeClaimTarget) *claimer {
	t.Helper()
	c := newClaimer(claimerConfig{
		Client:         st.client,
		Topic:          st.keys.Stream,
		Streams:        st.streams(),
		Group:          testGroup,
		Consumer:       "live",
		MaxIdleTime:    testMaxIdle,
		MaxDeliveries:  3,
		ClaimBatchSize: 100,
		ClaimInterval:  time.Hour,
		OnTrimmedAway:  target.noteTrimmedAway,
		Logger:         watermill.NopLogger{},
	}, target, newTestPoisoner(t, st, st.groupStreams(), nil))
	c.TestSignals.Init(t)
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// owners maps the group's pending entries on stream to their consumers.
func (st serviceTopic) owners(t *testing.T, stream string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range st.pending(t, stream) {
		m[p.ID] = p.Consumer
	}
	return m
}

func TestClaimerClaimsIdleEntriesOfDeadConsumers(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 4)
	st.add(t, st.retry, 1)
	fromTopic := ids(st.read(t, st.keys.Stream, "dead", 4))
	fromRetry := ids(st.read(t, st.retry, "dead", 1))
	idle, fresh, deleted := fromTopic[:2], fromTopic[2], fromTopic[3]
	st.setIdle(t, st.keys.Stream, "dead", 2*testMaxIdle, 0, append(slices.Clone(idle), deleted)...)
	st.setIdle(t, st.retry, "dead", 2*testMaxIdle, 0, fromRetry...)
	// Trimmed away while pending: nothing to claim, only to ack away.
	if err := st.client.XDel(context.Background(), st.keys.Stream, deleted).Err(); err != nil {
		t.Fatalf("XDEL: %v", err)
	}

	target := newFakeClaimTarget(100)
	c := startTestClaimer(t, st, target)
	c.TestSignals.Pass.Require(t, signalTimeout, "first claim pass")
	c.Stop()

	claimed := 0
drain:
	for {
		select {
		case n := <-c.TestSignals.Claimed.C():
			claimed += n
		default:
			break drain
		}
	}
	if claimed != 3 {
		t.Errorf("Claimed signals add up to %d, want 3", claimed)
	}
	if got := target.acceptedIDs(st.keys.Stream); !slices.Equal(got, idle) {
		t.Errorf("accepted from the topic stream %v, want the idle %v", got, idle)
	}
	if got := target.acceptedIDs(st.retry); !slices.Equal(got, fromRetry) {
		t.Errorf("accepted from the retry stream %v, want %v", got, fromRetry)
	}
	for _, e := range target.accepted[st.keys.Stream] {
		if len(e.Values) == 0 {
			t.Errorf("claimed entry %s without its fields", e.ID)
		}
	}
	owners := st.owners(t, st.keys.Stream)
	want := map[string]string{idle[0]: "live", idle[1]: "live", fresh: "dead"}
	if len(owners) != len(want) {
		t.Errorf("pending %v, want %v (the deleted entry acked away)", owners, want)
	}
	for id, consumer := range want {
		if owners[id] != consumer {
			t.Errorf("entry %s owned by %q, want %q", id, owners[id], consumer)
		}
	}
	if target.trimmedAway != 1 {
		t.Errorf("%d entries noted as trimmed away, want 1", target.trimmedAway)
	}
	select {
	case id := <-c.TestSignals.Poisoned.C():
		t.Errorf("poisoned %s, delivered only once", id)
	default:
	}
}

func TestClaimerPoisonsEntriesDeliveredTooOften(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 2)
	read := ids(st.read(t, st.keys.Stream, "dead", 2))
	// MaxDeliveries 3: the first is done for, the second has one left.
	st.setIdle(t, st.keys.Stream, "dead", 2*testMaxIdle, 3, read[0])
	st.setIdle(t, st.keys.Stream, "dead", 2*testMaxIdle, 2, read[1])

	target := newFakeClaimTarget(100)
	c := startTestClaimer(t, st, target)
	if id := c.TestSignals.Poisoned.Require(t, signalTimeout, "entry poisoned"); id != read[0] {
		t.Fatalf("poisoned %s, want %s", id, read[0])
	}
	c.TestSignals.Pass.Require(t, signalTimeout, "end of the pass")
	if got := target.acceptedIDs(st.keys.Stream); !slices.Equal(got, read[1:]) {
		t.Errorf("accepted %v, want only %s", got, read[1])
	}
	if n := st.len(t, st.keys.Poison); n != 1 {
		t.Errorf("poison stream holds %d entries, want 1", n)
	}
	if owners := st.owners(t, st.keys.Stream); len(owners) != 1 || owners[read[1]] != "live" {
		t.Errorf("pending %v, want only %s, claimed by live", owners, read[1])
	}
}

// While nobody takes the subscription's messages it claims nothing: the
// entries would only wait.
func TestClaimerIdleWhileHandlersStalled(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 1)
	read := ids(st.read(t, st.keys.Stream, "dead", 1))
	st.setIdle(t, st.keys.Stream, "dead", 2*testMaxIdle, 0, read...)

	target := newFakeClaimTarget(100)
	target.stalled.Store(true)
	c := startTestClaimer(t, st, target)
	c.TestSignals.Pass.Require(t, signalTimeout, "first claim pass")
	if got := target.acceptedIDs(st.keys.Stream); len(got) != 0 {
		t.Errorf("claimed %v while stalled", got)
	}
	if owners := st.owners(t, st.keys.Stream); owners[read[0]] != "dead" {
		t.Errorf("pending %v, want %s still dead's", owners, read[0])
	}
}
