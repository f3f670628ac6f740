package redistest

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// pollInterval is short so waits end soon after the condition holds, yet long
// enough not to busy-loop on the 2-core CI machine.
const pollInterval = 20 * time.Millisecond

// WaitFor calls cond every few milliseconds until it returns true, and fails
// the test with the message msgf (formatted with args) if that has not
// happened within timeout. cond is always called at least once.
func WaitFor(tb testing.TB, timeout time.Duration, cond func() bool, msgf string, args ...any) {
	tb.Helper()
	err := pollErr(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		tb.Fatalf("redistest: timed out after %v waiting: %s", timeout, fmt.Sprintf(msgf, args...))
	}
}

// errNotYet stands for a condition without a reason of its own.
var errNotYet = errors.New("condition not met")

// pollErr calls check until it returns nil or timeout passes, and then
// returns check's last error, so the helpers' failure messages can say what
// was still wrong rather than only that time ran out.
func pollErr(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}
