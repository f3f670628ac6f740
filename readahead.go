package redrive

import (
	"sync/atomic"
	"time"
)

// readAheadHorizon is how much of the handlers' work a subscription queues
// ahead of them: enough to cover a read's round trip many times over, little
// enough that a slow consumer holds almost nothing that idle consumers of
// its group could run.
const readAheadHorizon = 10 * time.Millisecond

// readAhead decides how many entries the reader may take from the group
// before handlers took the ones already read. It follows what the handlers
// actually take: the dispatcher measures how long each ready message waits
// for a handler to take it, and the limit is how many such waits fit in
// readAheadHorizon, between 1 and ReadAhead. It starts at 1 and at most
// doubles per message taken, so a consumer whose first message is taken at
// once (every idle handler takes its first message at once) does not grab a
// full batch before its pace is known.
type readAhead struct {
	max int64
	// waiting counts entries read (or claimed) and not yet taken by a
	// handler: queued, about to be redelivered, or offered by the dispatcher.
	waiting atomic.Int64
	limit   atomic.Int64
	// room wakes the reader when waiting fell to where it may read again.
	room chan struct{}

	// avgWait is the moving average of how long a ready message waited for a
	// handler. Only the dispatcher touches it, and only the dispatcher
	// changes limit.
	avgWait time.Duration
}

func newReadAhead(maxAhead int) *readAhead {
	r := &readAhead{max: int64(maxAhead), room: make(chan struct{}, 1)}
	r.limit.Store(1)
	return r
}

// want waits until the reader may read and returns how many entries to ask
// for: the limit less what still waits. It reads once waiting fell to half the
// limit, so reads stay batched. It returns 0 when stop closes.
func (r *readAhead) want(stop <-chan struct{}) int {
	for {
		limit, waiting := r.limit.Load(), r.waiting.Load()
		if waiting <= limit/2 && waiting < limit {
			return int(limit - waiting)
		}
		select {
		case <-r.room:
		case <-stop:
			return 0
		}
	}
}

// added counts n entries queued for handlers.
func (r *readAhead) added(n int) { r.waiting.Add(int64(n)) }

// removed counts n entries that left without a handler taking them (given
// back to the group, or dropped at shutdown).
func (r *readAhead) removed(n int) {
	r.waiting.Add(-int64(n))
	r.wake()
}

// taken records that a handler took a message that had waited for it
// (0: taken at once) and wakes the reader when it may read again. Only the
// dispatcher calls it.
func (r *readAhead) taken(wait time.Duration) {
	r.avgWait += (wait - r.avgWait) / 8
	limit, target := r.limit.Load(), r.target()
	switch {
	case target < limit:
		limit = target
		r.limit.Store(limit)
	case target > limit:
		limit = min(target, 2*limit)
		r.limit.Store(limit)
	}
	if waiting := r.waiting.Add(-1); waiting <= limit/2 {
		r.wake()
	}
}

// stalled records that a message waited stall for a handler without being
// taken, so the reader reads one entry at a time until handlers take again.
func (r *readAhead) stalled(stall time.Duration) {
	r.avgWait = max(r.avgWait, stall)
	r.limit.Store(1)
}

// target is the limit the measured pace asks for.
func (r *readAhead) target() int64 {
	if r.avgWait <= 0 {
		return r.max
	}
	return min(r.max, max(1, int64(readAheadHorizon/r.avgWait)))
}

func (r *readAhead) wake() {
	select {
	case r.room <- struct{}{}:
	default:
	}
}
