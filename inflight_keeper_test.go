package redrive

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// heldList is a fixed heldEntries.
type heldList map[string][]string

func (h heldList) ids() map[string][]string { return h }

func TestInflightKeeper(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 3)
	read := st.read(t, st.keys.Stream, "c", 3)
	const longIdle = time.Hour
	// Two entries this consumer holds, one another consumer took meanwhile;
	// all look long idle, as if nobody had refreshed them.
	st.setIdle(t, st.keys.Stream, "c", longIdle, 0, read[0].ID, read[1].ID)
	st.setIdle(t, st.keys.Stream, "other", longIdle, 0, read[2].ID)

	const maxIdle = 300 * time.Millisecond
	keeper := newInflightKeeper(inflightKeeperConfig{
		Client:      st.client,
		Group:       testGroup,
		Consumer:    "c",
		MaxIdleTime: maxIdle,
		Logger:      watermill.NopLogger{},
	}, heldList{st.keys.Stream: ids(read)})
	keeper.TestSignals.Init(t)
	if err := keeper.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(keeper.Stop)

	if n := keeper.TestSignals.Refreshed.Require(t, signalTimeout, "refresh pass"); n != 2 {
		t.Fatalf("refreshed %d entries, want the 2 the consumer still owns", n)
	}
	keeper.Stop()
	byID := map[string]time.Duration{}
	owner := map[string]string{}
	for _, p := range st.pending(t, st.keys.Stream) {
		byID[p.ID], owner[p.ID] = p.Idle, p.Consumer
	}
	for _, id := range ids(read[:2]) {
		if byID[id] >= longIdle || owner[id] != "c" {
			t.Errorf("entry %s: idle %v owned by %q, want refreshed and still c's", id, byID[id], owner[id])
		}
	}
	if byID[read[2].ID] < longIdle || owner[read[2].ID] != "other" {
		t.Errorf("entry %s of another consumer: idle %v owned by %q, want untouched", read[2].ID, byID[read[2].ID], owner[read[2].ID])
	}

	// At close what is still held is released: marked idle MaxIdleTime, so
	// other consumers' claimers take it at their next pass.
	keeper.releaseAll()
	for _, p := range st.pending(t, st.keys.Stream) {
		if p.ID != read[2].ID && (p.Idle < maxIdle || p.Consumer != "c") {
			t.Errorf("entry %s after release: idle %v owned by %q, want at least %v, still c's", p.ID, p.Idle, p.Consumer, maxIdle)
		}
	}
}
