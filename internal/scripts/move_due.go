package scripts

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redrive-go/redrive/internal/wire"
)

//go:embed move_due.lua
var moveDueSource string

// CorruptDelayedField is the stream entry field under which MoveDue writes a
// delayed member it cannot decode, so that the member does not block its set
// and the subscriber moves it to the poison stream.
const CorruptDelayedField = "redrive_corrupt_delayed"

// MoveDueArgs are the arguments of move_due.lua.
type MoveDueArgs struct {
	// Delayed is the sorted set the messages wait in.
	Delayed string
	// Stream is where they go when due.
	Stream string
	// Now is the time messages are due at (the caller's clock: the one their
	// due times were set with).
	Now time.Time
	// Limit is the most members moved in this call; at least 1.
	Limit int64
	// Maxlen caps Stream (XADD MAXLEN ~ n); 0 means no cap.
	Maxlen int64
}

// MoveDueReply is what move_due.lua did.
type MoveDueReply struct {
	// Moved is how many members entered the stream.
	Moved int64
	// Next is when the earliest member still waiting is due; the zero time
	// when the set is empty.
	Next time.Time
}

// MoveDue moves the delayed messages due at Now into their stream, each
// removed from the set in the same step that adds it.
var MoveDue = newScript("move_due", moveDueSource,
	func(a MoveDueArgs) ([]string, []interface{}, error) {
		if a.Limit < 1 {
			return nil, nil, fmt.Errorf("limit %d, want at least 1", a.Limit)
		}
		if a.Maxlen < 0 {
			return nil, nil, fmt.Errorf("maxlen %d is negative", a.Maxlen)
		}
		return []string{a.Delayed, a.Stream},
			[]interface{}{a.Now.UnixMilli(), a.Limit, a.Maxlen, CorruptDelayedField, wire.MemberPrefix}, nil
	},
	parseMoveDue)

func parseMoveDue(v interface{}) (MoveDueReply, error) {
	parts, err := replyList(v, 2)
	if err != nil {
		return MoveDueReply{}, err
	}
	var r MoveDueReply
	if r.Moved, err = replyInt(parts[0]); err != nil {
		return MoveDueReply{}, fmt.Errorf("moved: %w", err)
	}
	if parts[1] == nil {
		return r, nil
	}
	score, err := replyString(parts[1])
	if err != nil {
		return MoveDueReply{}, fmt.Errorf("next score: %w", err)
	}
	ms, err := strconv.ParseFloat(score, 64)
	if err != nil {
		return MoveDueReply{}, fmt.Errorf("next score %q is not a number", score)
	}
	r.Next = time.UnixMilli(int64(ms))
	return r, nil
}
