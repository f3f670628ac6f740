package redrive

import (
	"sync"
	"time"
)

// Delayed-message movers sleep until the next due time. When this process
// schedules a message earlier than that, it wakes the movers of that delayed
// set through this registry, so delays fire on time without polling. Other
// processes' schedules are seen at the mover's next poll.
type wakeupRegistry struct {
	mu        sync.Mutex
	listeners map[string]map[chan time.Time]struct{}
}

var processWakeups = &wakeupRegistry{listeners: map[string]map[chan time.Time]struct{}{}}

func (r *wakeupRegistry) listen(key string) chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners[key] == nil {
		r.listeners[key] = map[chan time.Time]struct{}{}
	}
	r.listeners[key][ch] = struct{}{}
	return ch
}

func (r *wakeupRegistry) forget(key string, ch chan time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.listeners[key], ch)
	if len(r.listeners[key]) == 0 {
		delete(r.listeners, key)
	}
}

// notify tells the movers of key that a message is due at due. It never
// blocks: a mover that has a wake-up pending keeps the earlier of the two.
func (r *wakeupRegistry) notify(key string, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.listeners[key] {
		select {
		case ch <- due:
		default:
			select {
			case old := <-ch:
				if old.Before(due) {
					due = old
				}
			default:
			}
			select {
			case ch <- due:
			default:
			}
		}
	}
}
