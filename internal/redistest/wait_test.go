package redistest

import (
	"strings"
	"testing"
	"time"
)

func TestWaitForSucceeds(t *testing.T) {
	calls := 0
	WaitFor(t, 5*time.Second, func() bool {
		calls++
		return calls == 3
	}, "third call")
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}
}

func TestWaitForTimesOut(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	// WaitFor returns right after Fatalf, so the recorder need not Goexit.
	start := time.Now()
	WaitFor(rec, 100*time.Millisecond, func() bool { return false }, "queue %q to drain", "jobs")
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("WaitFor gave up after %v, want just over 100ms", elapsed)
	}
	if !strings.Contains(rec.msg, `queue "jobs" to drain`) || !strings.Contains(rec.msg, "100ms") {
		t.Errorf("failure message = %q, want the formatted message and the timeout", rec.msg)
	}
}
