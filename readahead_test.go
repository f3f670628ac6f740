package redrive

import (
	"testing"
	"time"
)

// TestReadAheadFollowsHandlers: the limit starts at one entry, doubles per
// message taken at once up to the bound, and falls to one when each message
// waits longer for a handler than the horizon.
func TestReadAheadFollowsHandlers(t *testing.T) {
	r := newReadAhead(16)
	stop := make(chan struct{})
	if got := r.want(stop); got != 1 {
		t.Fatalf("first want = %d, want 1 before any handler was seen", got)
	}
	for _, want := range []int64{2, 4, 8, 16, 16} {
		r.added(1)
		r.taken(0)
		if got := r.limit.Load(); got != want {
			t.Fatalf("limit after a message taken at once = %d, want %d", got, want)
		}
	}
	for range 20 {
		r.added(1)
		r.taken(100 * time.Millisecond)
	}
	if got := r.limit.Load(); got != 1 {
		t.Fatalf("limit with a 100 ms handler = %d, want 1", got)
	}
	if got := r.waiting.Load(); got != 0 {
		t.Fatalf("waiting = %d after every message was taken", got)
	}
}

// TestReadAheadWaitsForRoom: the reader reads again only once handlers took
// half of the limit, and stops waiting when reading stops.
func TestReadAheadWaitsForRoom(t *testing.T) {
	r := newReadAhead(8)
	r.limit.Store(8)
	r.added(8)
	stop := make(chan struct{})
	got := make(chan int, 1)
	go func() { got <- r.want(stop) }()
	for range 3 {
		r.taken(0)
	}
	select {
	case n := <-got:
		t.Fatalf("want returned %d with 5 of 8 still waiting", n)
	default:
	}
	r.taken(0)
	if n := <-got; n != 4 {
		t.Fatalf("want = %d with 4 of 8 waiting, want 4", n)
	}

	r.added(8)
	go func() { got <- r.want(stop) }()
	close(stop)
	if n := <-got; n != 0 {
		t.Fatalf("want after reading stopped = %d, want 0", n)
	}
}

// TestReadAheadStalled: a message nobody took reads one entry at a time
// afterwards.
func TestReadAheadStalled(t *testing.T) {
	r := newReadAhead(128)
	r.limit.Store(128)
	r.stalled(30 * time.Second)
	if got := r.limit.Load(); got != 1 {
		t.Fatalf("limit after a stall = %d, want 1", got)
	}
	r.added(1)
	r.taken(0)
	if got := r.limit.Load(); got != 1 {
		t.Fatalf("limit after the first take following a stall = %d, want 1 (the stall dominates the average)", got)
	}
}
