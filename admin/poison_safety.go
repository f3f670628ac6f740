package admin

import (
	"encoding/json"

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
	type plain PurgeResult
	if !r.DryRun {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Purged     *int `json:"purged,omitempty"`
		WouldPurge int  `json:"would_purge"`
	}{plain: plain(r), WouldPurge: r.Purged})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *PurgeResult) UnmarshalJSON(b []byte) error {
	type plain PurgeResult
	var v struct {
		plain
		WouldPurge *int `json:"would_purge"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = PurgeResult(v.plain)
	if v.WouldPurge != nil {
		r.Purged = *v.WouldPurge
	}
	return nil
}

// MarshalJSON writes the result, with the count of a dry run named
// would_requeue instead of requeued: nothing was requeued.
func (r RequeueResult) MarshalJSON() ([]byte, error) {
	type plain RequeueResult
	if !r.DryRun {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Requeued     *int `json:"requeued,omitempty"`
		WouldRequeue int  `json:"would_requeue"`
	}{plain: plain(r), WouldRequeue: r.Requeued})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *RequeueResult) UnmarshalJSON(b []byte) error {
	type plain RequeueResult
	var v struct {
		plain
		WouldRequeue *int `json:"would_requeue"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = RequeueResult(v.plain)
	if v.WouldRequeue != nil {
		r.Requeued = *v.WouldRequeue
	}
	return nil
}
