package redrive

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// TestTrimmerRuns: the running trimmer removes the entries its group has
// acked and keeps the ones still pending, on every run, told by its Trimmed
// signal.
func TestTrimmerRuns(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	ctx := context.Background()
	st.add(t, st.keys.Stream, 10)
	read := st.read(t, st.keys.Stream, "c", 10)
	if err := st.client.XAck(ctx, st.keys.Stream, testGroup, ids(read[:6])...).Err(); err != nil {
		t.Fatal(err)
	}

	trimmer, err := NewTrimmer(TrimmerConfig{
		Client: st.client, Stream: st.keys.Stream, RetainAcked: time.Millisecond, Interval: 10 * time.Millisecond,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	// The first run comes one Interval after Start, when the entries are
	// older than RetainAcked.
	trimmer.testSignals.Trimmed.Init(t)
	if err := trimmer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer trimmer.Stop()

	first, ok := trimmer.testSignals.Trimmed.WaitOrTimeout(signalTimeout)
	if !ok {
		t.Fatal("the trimmer did not run")
	}
	if first.Trimmed != 6 || first.Length != 4 || first.FirstID != read[6].ID {
		t.Fatalf("first run: %+v, want the 6 acked entries removed and %s first", first, read[6].ID)
	}
	second, ok := trimmer.testSignals.Trimmed.WaitOrTimeout(signalTimeout)
	if !ok || second.Trimmed != 0 || second.Length != 4 {
		t.Fatalf("second run: %+v (%v), want nothing more removed", second, ok)
	}
	trimmer.Stop()
	if n := st.len(t, st.keys.Stream); n != 4 {
		t.Fatalf("XLEN = %d, want 4", n)
	}
}
