// Package testsignal lets background services tell tests that something
// happened, so tests wait on events instead of sleeping. It follows the
// pattern River uses in its maintenance services: a signal is a no-op until a
// test calls Init, so production code pays nothing for it.
package testsignal

import (
	"sync"
	"time"
)

// Signal carries values of type T from a service to a test.
type Signal[T any] struct {
	mu sync.Mutex
	ch chan T
}

// Init enables the signal. Only tests call it.
func (s *Signal[T]) Init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ch = make(chan T, 1000)
}

// Signal sends v if the signal was initialised. It never blocks: a test that
// stops listening must not stall the service.
func (s *Signal[T]) Signal(v T) {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- v:
	default:
	}
}

// WaitOrTimeout returns the next value, or false after timeout.
func (s *Signal[T]) WaitOrTimeout(timeout time.Duration) (T, bool) {
	s.mu.Lock()
	ch := s.ch
	s.mu.Unlock()
	var zero T
	if ch == nil {
		panic("testsignal: WaitOrTimeout on a signal that was not initialised")
	}
	select {
	case v := <-ch:
		return v, true
	case <-time.After(timeout):
		return zero, false
	}
}
