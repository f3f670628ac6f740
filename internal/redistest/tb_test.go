package redistest

import (
	"fmt"
	"runtime"
	"testing"
)

// fatalRecorder is a testing.TB whose Fatalf records the message instead of
// failing the test, so the helpers' failure paths can be checked. With
// goexit set, Fatalf then ends the goroutine as the real one does; run the
// helper in a goroutine of its own for that.
type fatalRecorder struct {
	testing.TB
	goexit bool
	msg    string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	if f.goexit {
		runtime.Goexit()
	}
}
