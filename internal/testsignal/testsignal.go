// Package testsignal lets background services tell tests that something
// happened, so tests wait on events instead of sleeping. It follows the
// pattern River uses in its maintenance services: a signal is a no-op until a
// test calls Init, so production code pays nothing for it, and a test that
// lets a signal's buffer fill fails instead of silently missing values.
package testsignal

import (
	"sync/atomic"
	"time"
)

// TB is the part of testing.TB a signal uses. The package does not import
// testing, so the services that carry signals do not link it into programs.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// bufferSize is how many values a signal holds for a test that has not
// taken them yet. A test whose service outruns it gets an error, not a
// stalled service.
const bufferSize = 1000

// Signal carries values of type T from a service to a test. Its zero value
// is ready: an uninitialised signal costs a service one atomic load.
type Signal[T any] struct {
	enabled atomic.Pointer[enabled[T]]
}

// enabled is a signal a test initialised.
type enabled[T any] struct {
	ch chan T
	tb TB
}

// Init enables the signal for the test tb. Only tests call it, before the
// service starts.
func (s *Signal[T]) Init(tb TB) {
	s.enabled.Store(&enabled[T]{ch: make(chan T, bufferSize), tb: tb})
}

// Signal sends v if the signal was initialised. It never blocks: a full
// buffer fails the test that initialised the signal (a test must take every
// value it asked for, or stop the service) and v is dropped.
func (s *Signal[T]) Signal(v T) {
	e := s.enabled.Load()
	if e == nil {
		return
	}
	select {
	case e.ch <- v:
	default:
		e.tb.Errorf("testsignal: a %T signal's buffer of %d values is full: the test does not take the values it asked for (value dropped: %v)", v, bufferSize, v)
	}
}

// WaitOrTimeout returns the next value, or false after timeout.
func (s *Signal[T]) WaitOrTimeout(timeout time.Duration) (T, bool) {
	var zero T
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-s.C():
		return v, true
	case <-t.C:
		return zero, false
	}
}

// C is the channel the values arrive on, for tests that wait on several
// things at once.
func (s *Signal[T]) C() <-chan T {
	e := s.enabled.Load()
	if e == nil {
		panic("testsignal: waiting on a signal that was not initialised")
	}
	return e.ch
}

// Require returns the next value, failing tb (from the test's goroutine)
// when none arrives within timeout; what names what was awaited.
func (s *Signal[T]) Require(tb TB, timeout time.Duration, what string) T {
	tb.Helper()
	v, ok := s.WaitOrTimeout(timeout)
	if !ok {
		tb.Fatalf("testsignal: no %s within %v", what, timeout)
	}
	return v
}

// DelayedMoverSignals are the signals of a redrive.DelayedMover.
type DelayedMoverSignals struct {
	// Moved carries the number of messages moved by each call that moved any.
	Moved Signal[int]
	// Polled is sent after every call.
	Polled Signal[struct{}]
}

// DelayedMoverOf returns the signals of a *redrive.DelayedMover. The tests in
// tests/, outside the redrive package, need them, and applications have no
// use for them, so they are not part of redrive's API: the redrive package
// sets this function when it is initialised.
var DelayedMoverOf func(mover any) *DelayedMoverSignals
