package middleware

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// FuzzReadRetryState feeds ReadRetryState retry metadata as anyone upstream
// could have written (or mangled) it. Never a panic; an error names the
// metadata key; a state it accepts survives being written and read again.
// The seed corpus is in testdata/fuzz; CI runs the target briefly (.ci/run).
func FuzzReadRetryState(f *testing.F) {
	f.Add("2", "2025-01-02T03:04:05.123456789Z", "2025-01-02T03:04:07Z", "boom", "2025-01-02T03:04:09+02:00",
		`[{"n":1,"at":"2025-01-02T03:04:05Z","err":"boom","delay":1000000000},{"n":2,"at":"2025-01-02T03:04:07Z","err":"boom"}]`)
	f.Add("", "", "", "", "", "")
	f.Add("-1", "", "", "", "", "")
	f.Add("99999999999999999999", "", "", "", "", "")
	f.Add("+3", "", "", "", "", "null")
	f.Add("1", "yesterday", "", "", "", "")
	f.Add("1", "", "", "", "", `[{"n":"x"}]`)
	f.Add("1", "", "", "", "", `{"n":1}`)
	f.Add("1", "", "", "", "", `[{"at":"10000-01-01T00:00:00Z"}]`)
	f.Add("1", "9999-12-31T23:59:59.999999999-23:59", "0000-01-01T00:00:00+23:59", "\xff\xfe", "", `[`)
	f.Add("1", "0000-01-01T00:00:00+01:00", "", "", "", "")

	f.Fuzz(func(t *testing.T, attempts, first, last, lastErr, next, history string) {
		md := message.Metadata{}
		for k, v := range map[string]string{
			MetadataAttempts:      attempts,
			MetadataFirstFailedAt: first,
			MetadataLastFailedAt:  last,
			MetadataLastError:     lastErr,
			MetadataNextAttemptAt: next,
			MetadataHistory:       history,
		} {
			if v != "" {
				md.Set(k, v)
			}
		}
		st, err := ReadRetryState(md)
		if err != nil {
			named := false
			for _, key := range []string{MetadataAttempts, MetadataFirstFailedAt, MetadataLastFailedAt, MetadataNextAttemptAt, MetadataHistory} {
				named = named || strings.Contains(err.Error(), key)
			}
			if !named {
				t.Fatalf("error does not name the metadata key: %v", err)
			}
			return
		}
		if st.Attempts < 0 {
			t.Fatalf("negative attempt count %d from %q", st.Attempts, attempts)
		}

		// What Retry writes back must read back the same.
		out := message.Metadata{}
		st.write(out)
		again, err := ReadRetryState(out)
		if err != nil {
			t.Fatalf("reading back what was written: %v (metadata %q)", err, out)
		}
		if again.Attempts != st.Attempts || again.LastError != st.LastError ||
			!again.FirstFailedAt.Equal(st.FirstFailedAt) || !again.LastFailedAt.Equal(st.LastFailedAt) ||
			!again.NextAttemptAt.Equal(st.NextAttemptAt) || len(again.History) != len(st.History) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", st, again)
		}
		for i := range st.History {
			a, b := st.History[i], again.History[i]
			if a.Number != b.Number || a.Error != b.Error || a.Delay != b.Delay || !a.FailedAt.Equal(b.FailedAt) {
				t.Fatalf("round trip changed attempt %d: %+v, %+v", i, a, b)
			}
		}

		// truncate, used on every error Retry stores, must cut anything.
		for _, n := range []int{1, 2, 3, 7, len(lastErr)} {
			if n < 1 {
				continue
			}
			got := truncate(lastErr, n)
			if len(lastErr) > n && len(got) > n+len("…") {
				t.Fatalf("truncate(%q, %d) = %q", lastErr, n, got)
			}
		}
	})
}
