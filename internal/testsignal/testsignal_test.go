package testsignal

import (
	"fmt"
	"testing"
	"time"
)

// errorRecorder is a TB whose Errorf records instead of failing.
type errorRecorder struct {
	testing.TB
	errors []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestUninitialisedSignalIsNoOp(t *testing.T) {
	var s Signal[int]
	for i := range 2 * bufferSize {
		s.Signal(i) // must neither block nor panic
	}
}

func TestSignalDeliversInOrder(t *testing.T) {
	var s Signal[int]
	s.Init(t)
	s.Signal(1)
	s.Signal(2)
	if got := s.Require(t, time.Second, "first value"); got != 1 {
		t.Fatalf("first value %d, want 1", got)
	}
	if got := <-s.C(); got != 2 {
		t.Fatalf("second value %d, want 2", got)
	}
	if v, ok := s.WaitOrTimeout(time.Millisecond); ok {
		t.Fatalf("got %d from an empty signal", v)
	}
}

func TestFullSignalFailsTheTest(t *testing.T) {
	rec := &errorRecorder{TB: t}
	var s Signal[int]
	s.Init(rec)
	for i := range bufferSize {
		s.Signal(i)
	}
	if len(rec.errors) != 0 {
		t.Fatalf("errors before the buffer filled: %v", rec.errors)
	}
	s.Signal(bufferSize)
	if len(rec.errors) != 1 {
		t.Fatalf("a send to a full signal reported %d errors, want 1", len(rec.errors))
	}
}

func BenchmarkUninitialisedSignal(b *testing.B) {
	var s Signal[int]
	for i := range b.N {
		s.Signal(i)
	}
}
