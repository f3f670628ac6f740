package scripts

import (
	_ "embed"
	"errors"
	"time"
)

//go:embed schedule_retry.lua
var scheduleRetrySource string

// ScheduleRetryArgs are the arguments of schedule_retry.lua. Stream and
// Delayed must be in one Redis Cluster slot.
type ScheduleRetryArgs struct {
	// Stream is where the failed delivery came from.
	Stream string
	// Delayed is the sorted set the message waits in (the group's retry
	// delayed set).
	Delayed string
	Group   string
	EntryID string
	// DeleteEntry deletes the entry from Stream after acking it (a group's
	// private retry stream, which nobody else reads).
	DeleteEntry bool
	// DueAt is when the message is delivered again (scored with DueScore).
	DueAt time.Time
	// Member is the encoded message (wire.EncodeDelayedMember).
	Member string
	// AckedLocally schedules the message even though the entry is no longer
	// pending, because this consumer acked it itself (InstantAck).
	AckedLocally bool
}

// ScheduleRetry acks a failed delivery and adds the message to a delayed
// set, atomically. Its reply is true when scheduled, false when the entry was
// no longer pending because another consumer settled it (nothing written).
var ScheduleRetry = newScript("schedule_retry", scheduleRetrySource,
	func(a ScheduleRetryArgs) ([]string, []interface{}, error) {
		if a.Member == "" {
			return nil, nil, errors.New("empty member")
		}
		return []string{a.Stream, a.Delayed},
			[]interface{}{a.Group, a.EntryID, flag(a.DeleteEntry), DueScore(a.DueAt), a.Member, flag(a.AckedLocally)}, nil
	},
	replyBool)
