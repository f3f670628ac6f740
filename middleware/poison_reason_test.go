package middleware_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	backoffv4 "github.com/cenkalti/backoff/v4"
	backoffv5 "github.com/cenkalti/backoff/v5"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/middleware"
)

// Messages poisoned before the code was written carry only the text; each
// text redrive ever wrote must read back as its code.
func TestPoisonReasonOfOldMetadata(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]redrive.PoisonReason{
		"max retries exceeded (5)":                               redrive.PoisonReasonMaxRetries,
		"max retries exceeded (2): connection refused":           redrive.PoisonReasonMaxRetries,
		"max elapsed time exceeded (1h0m0s)":                     redrive.PoisonReasonMaxElapsedTime,
		"permanent error: permanent: bad input":                  redrive.PoisonReasonPermanent,
		"permanent error (ShouldRetry): not found":               redrive.PoisonReasonPermanent,
		redrive.ReasonExceededMaxDeliveries + " (3)":             redrive.PoisonReasonCrashLoop,
		redrive.ReasonUndecodable + ": missing field _watermill": redrive.PoisonReasonUndecodable,
		"poisoned by hand":                                       redrive.PoisonReasonOther,
	} {
		md := message.Metadata{wmiddleware.ReasonForPoisonedKey: text}
		if got := middleware.PoisonReasonOf(md); got != want {
			t.Errorf("PoisonReasonOf(reason %q) = %q, want %q", text, got, want)
		}
	}
}

func TestPoisonReasonOfPrefersTheCode(t *testing.T) {
	t.Parallel()
	md := message.Metadata{
		wmiddleware.ReasonForPoisonedKey: "max retries exceeded (5): crash",
		redrive.MetadataPoisonReason:     string(redrive.PoisonReasonCrashLoop),
	}
	if got := middleware.PoisonReasonOf(md); got != redrive.PoisonReasonCrashLoop {
		t.Errorf("PoisonReasonOf = %q, want the written code %q", got, redrive.PoisonReasonCrashLoop)
	}
	// A code this version does not know falls back to the text.
	md[redrive.MetadataPoisonReason] = "from_the_future"
	if got := middleware.PoisonReasonOf(md); got != redrive.PoisonReasonMaxRetries {
		t.Errorf("PoisonReasonOf with an unknown code = %q, want %q from the text", got, redrive.PoisonReasonMaxRetries)
	}
	if got := middleware.PoisonReasonOf(message.Metadata{}); got != "" {
		t.Errorf("PoisonReasonOf(not poisoned) = %q, want empty", got)
	}
}

func TestPoisonReasonsAreDistinctAndKnown(t *testing.T) {
	t.Parallel()
	seen := map[redrive.PoisonReason]bool{}
	for _, r := range redrive.PoisonReasons() {
		if seen[r] || !r.Known() || r == "" || strings.ContainsAny(string(r), " \t") {
			t.Errorf("reason code %q repeated, unknown or not a label value", r)
		}
		seen[r] = true
	}
	if redrive.PoisonReason("max retries exceeded").Known() {
		t.Error("a reason text is taken for a code")
	}
}

func TestIsPermanentRecognisesBackoffV4AndV5(t *testing.T) {
	t.Parallel()
	base := errors.New("bad input")
	for name, err := range map[string]error{
		"middleware.Permanent":         middleware.Permanent(base),
		"backoff/v4 Permanent":         backoffv4.Permanent(base),
		"backoff/v5 Permanent":         backoffv5.Permanent(base),
		"wrapped backoff/v5 Permanent": fmt.Errorf("charge: %w", backoffv5.Permanent(base)),
	} {
		if !middleware.IsPermanent(err) {
			t.Errorf("IsPermanent(%s) = false, want true", name)
		}
	}
	if middleware.IsPermanent(base) || middleware.IsPermanent(nil) {
		t.Error("IsPermanent is true for an unmarked error")
	}
}
