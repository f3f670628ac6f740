package redrive

import (
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// TestAckerSendsEveryAck: acks added from several goroutines, many more than
// one batch holds (so adders wait for room while batches are taken), all
// reach Redis by the time stop returns.
func TestAckerSendsEveryAck(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	const n = 300
	st.add(t, st.keys.Stream, n)
	read := st.read(t, st.keys.Stream, "c", n)
	a := newAcker(ackerConfig{
		Client:           st.client,
		groupStreams:     st.groupStreams(),
		AckBatchSize:     7,
		AckFlushInterval: time.Millisecond,
		Logger:           watermill.NopLogger{},
	})
	a.start()
	var wg sync.WaitGroup
	for part := range 3 {
		wg.Go(func() {
			for i := part; i < n; i += 3 {
				a.add(st.keys.Stream, read[i].ID)
			}
		})
	}
	wg.Wait()
	a.stop()
	if p := st.pending(t, st.keys.Stream); len(p) != 0 {
		t.Fatalf("%d entries still pending after stop", len(p))
	}
}
