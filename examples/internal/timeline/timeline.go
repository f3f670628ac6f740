// Package timeline prints what redrive's examples do, each line stamped with
// the seconds since the example started, so the output shows when retries,
// delays and deliveries happen.
package timeline

import (
	"fmt"
	"sync"
	"time"
)

// Timeline prints stamped lines. Its methods are safe for concurrent use, so
// handlers running at once do not mix their lines.
type Timeline struct {
	start time.Time
	mu    sync.Mutex
}

// Start returns a Timeline whose time zero is now.
func Start() *Timeline {
	return &Timeline{start: time.Now()}
}

// Step prints one line, like fmt.Printf, after the seconds since Start.
func (t *Timeline) Step(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Printf("%+.3fs  %s\n", t.Seconds(time.Now()), fmt.Sprintf(format, args...))
}

// Seconds is the time of at on the timeline.
func (t *Timeline) Seconds(at time.Time) float64 {
	return at.Sub(t.start).Seconds()
}
