package redrive

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

func TestAcker(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	st.add(t, st.keys.Stream, 4)
	st.add(t, st.retry, 2)
	fromTopic := st.read(t, st.keys.Stream, "c", 4)
	fromRetry := st.read(t, st.retry, "c", 2)

	acker := newAcker(ackerConfig{
		Client:       st.client,
		groupStreams: st.groupStreams(),
		AckBatchSize: 5,
		// Only a full batch or stop sends acks during the test.
		AckFlushInterval: time.Hour,
		Logger:           watermill.NopLogger{},
	})
	acker.TestSignals.Init(t)
	acker.start()
	t.Cleanup(acker.stop)

	for _, e := range fromTopic[:3] {
		acker.add(st.keys.Stream, e.ID)
	}
	for _, e := range fromRetry {
		acker.add(st.retry, e.ID)
	}
	if n := acker.TestSignals.Flushed.Require(t, signalTimeout, "flush of a full batch"); n != 5 {
		t.Fatalf("flushed a batch of %d acks, want the 5 queued", n)
	}
	if p := st.pending(t, st.keys.Stream); len(p) != 1 || p[0].ID != fromTopic[3].ID {
		t.Fatalf("pending on the topic stream %+v, want only %s", p, fromTopic[3].ID)
	}
	if n := st.len(t, st.keys.Stream); n != 4 {
		t.Errorf("topic stream holds %d entries after the acks, want 4: acking must not delete them", n)
	}
	if p := st.pending(t, st.retry); len(p) != 0 {
		t.Errorf("pending on the retry stream %+v, want none", p)
	}
	if n := st.len(t, st.retry); n != 0 {
		t.Errorf("retry stream holds %d entries after the acks, want 0: settled retries are deleted", n)
	}

	// Less than a batch waits for the interval, or for stop.
	acker.add(st.keys.Stream, fromTopic[3].ID)
	acker.stop()
	if n := acker.TestSignals.Flushed.Require(t, signalTimeout, "flush at stop"); n != 1 {
		t.Fatalf("stop flushed %d acks, want 1", n)
	}
	if p := st.pending(t, st.keys.Stream); len(p) != 0 {
		t.Fatalf("pending after stop %+v, want none", p)
	}
}
