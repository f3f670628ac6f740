package admin

import (
	"encoding/json"
	"fmt"
	"strconv"

	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// NoteNotPoisoned is the Outcome.Note of an entry that purge or requeue
// left alone because it carries no poison metadata: it looks like a live
// message, and the stream like an ordinary topic given for a poison topic.
const NoteNotPoisoned = "not a poisoned message: no " + wmiddleware.ReasonForPoisonedKey + " or " +
	wmiddleware.PoisonedTopicKey + " metadata"

// HasPoisonMetadata reports whether m carries the metadata that the retry
// middleware and the Subscriber write when they poison a message. An entry
// without it is an ordinary message: the stream is probably a live topic
// given by mistake for a poison topic.
func (m PoisonedMessage) HasPoisonMetadata() bool {
	return m.Reason != "" || m.OriginalTopic != ""
}

// countUnpoisoned counts the messages without poison metadata.
func countUnpoisoned(msgs []PoisonedMessage) int {
	n := 0
	for _, m := range msgs {
		if !m.HasPoisonMetadata() {
			n++
		}
	}
	return n
}

// MarshalJSON writes the result, with the count of a dry run named
// would_purge instead of purged: nothing was purged.
func (r PurgeResult) MarshalJSON() ([]byte, error) {
	return marshalWithCount(r.ChangeResult, "purged", "would_purge", r.Purged)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *PurgeResult) UnmarshalJSON(b []byte) error {
	return unmarshalWithCount(b, &r.ChangeResult, "purged", "would_purge", &r.Purged)
}

// MarshalJSON writes the result, with the count of a dry run named
// would_requeue instead of requeued: nothing was requeued.
func (r RequeueResult) MarshalJSON() ([]byte, error) {
	return marshalWithCount(r.ChangeResult, "requeued", "would_requeue", r.Requeued)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *RequeueResult) UnmarshalJSON(b []byte) error {
	return unmarshalWithCount(b, &r.ChangeResult, "requeued", "would_requeue", &r.Requeued)
}

// marshalWithCount writes base as one flat object with n added as its last
// field, named key, or dryKey when base is a dry run.
func marshalWithCount(base ChangeResult, key, dryKey string, n int) ([]byte, error) {
	b, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	if base.DryRun {
		key = dryKey
	}
	// b is an object with at least the stream and dry_run fields, so the
	// count goes in before its closing brace, after a comma.
	b = append(b[:len(b)-1], ',')
	b = strconv.AppendQuote(b, key)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '}'), nil
}

// unmarshalWithCount reads what marshalWithCount writes.
func unmarshalWithCount(b []byte, base *ChangeResult, key, dryKey string, n *int) error {
	if err := json.Unmarshal(b, base); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	*n = 0
	for _, k := range []string{key, dryKey} {
		if raw, ok := fields[k]; ok {
			if err := json.Unmarshal(raw, n); err != nil {
				return fmt.Errorf("read %s: %w", k, err)
			}
		}
	}
	return nil
}
