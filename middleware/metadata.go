package middleware

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys Retry writes on a message each time its handler fails. Times
// are RFC 3339 with nanoseconds, UTC.
const (
	// MetadataAttempts is how many times the handler failed on the message.
	MetadataAttempts = "redrive_retry_attempts"
	// MetadataFirstFailedAt is when the handler failed first.
	MetadataFirstFailedAt = "redrive_retry_first_failed_at"
	// MetadataLastFailedAt is when the handler failed last.
	MetadataLastFailedAt = "redrive_retry_last_failed_at"
	// MetadataLastError is the last error, truncated to RetryConfig.MaxErrorLength.
	MetadataLastError = "redrive_retry_last_error"
	// MetadataNextAttemptAt is when the message is due again (absent once poisoned).
	MetadataNextAttemptAt = "redrive_retry_next_attempt_at"
	// MetadataHistory is a JSON array of the last RetryConfig.HistoryLength
	// attempts (see Attempt).
	MetadataHistory = "redrive_retry_history"
)

// maxAttempts bounds the attempt count read from metadata, far above any
// sane MaxRetries, so counting on cannot overflow.
const maxAttempts = 1_000_000

// Attempt is one failure in MetadataHistory.
type Attempt struct {
	// Number counts failures from 1.
	Number int `json:"n"`
	// FailedAt is when the handler failed.
	FailedAt time.Time `json:"at"`
	// Error is the handler's error, truncated.
	Error string `json:"err"`
	// Delay is the backoff chosen after this failure; zero when poisoned.
	Delay time.Duration `json:"delay,omitempty"`
}

// RetryState is what the retry metadata of a message says.
type RetryState struct {
	Attempts      int
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	LastError     string
	NextAttemptAt time.Time
	History       []Attempt
}

// ReadRetryState parses the retry metadata of a message. A message that never
// failed gives the zero state. Malformed values give an error naming the key.
func ReadRetryState(md message.Metadata) (RetryState, error) {
	var st RetryState
	var err error
	if v := md.Get(MetadataAttempts); v != "" {
		st.Attempts, err = strconv.Atoi(v)
		if err != nil || st.Attempts < 0 || st.Attempts > maxAttempts {
			return RetryState{}, fmt.Errorf("metadata %s: %q is not a count from 0 to %d", MetadataAttempts, v, maxAttempts)
		}
	}
	times := []struct {
		key string
		to  *time.Time
	}{
		{MetadataFirstFailedAt, &st.FirstFailedAt},
		{MetadataLastFailedAt, &st.LastFailedAt},
		{MetadataNextAttemptAt, &st.NextAttemptAt},
	}
	for _, t := range times {
		v := md.Get(t.key)
		if v == "" {
			continue
		}
		if *t.to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return RetryState{}, fmt.Errorf("metadata %s: %w", t.key, err)
		}
		// Written back in UTC, a time must stay within the years RFC 3339
		// can spell, or the next read would reject it.
		if y := t.to.UTC().Year(); y < 1 || y > 9999 {
			return RetryState{}, fmt.Errorf("metadata %s: %q is out of range", t.key, v)
		}
	}
	st.LastError = md.Get(MetadataLastError)
	if v := md.Get(MetadataHistory); v != "" {
		if err := json.Unmarshal([]byte(v), &st.History); err != nil {
			return RetryState{}, fmt.Errorf("metadata %s: %w", MetadataHistory, err)
		}
		for i, a := range st.History {
			if y := a.FailedAt.UTC().Year(); y < 1 || y > 9999 {
				return RetryState{}, fmt.Errorf("metadata %s: attempt %d: time %s is out of range", MetadataHistory, i, a.FailedAt)
			}
		}
	}
	return st, nil
}

// write stores the state in md.
func (st RetryState) write(md message.Metadata) {
	md.Set(MetadataAttempts, strconv.Itoa(st.Attempts))
	md.Set(MetadataFirstFailedAt, formatTime(st.FirstFailedAt))
	md.Set(MetadataLastFailedAt, formatTime(st.LastFailedAt))
	md.Set(MetadataLastError, st.LastError)
	if st.NextAttemptAt.IsZero() {
		delete(md, MetadataNextAttemptAt)
	} else {
		md.Set(MetadataNextAttemptAt, formatTime(st.NextAttemptAt))
	}
	history, _ := json.Marshal(st.History) // Attempt always marshals
	md.Set(MetadataHistory, string(history))
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
