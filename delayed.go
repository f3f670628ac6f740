package redrive

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/wire"
)

// dueTime returns when a message with Watermill's delay metadata may enter its
// stream, and whether it carries a delay at all.
//
// delay.Message writes _watermill_delayed_until in whole seconds (RFC 3339)
// and _watermill_delayed_for as a duration. The "until" time alone could be
// up to a second early, so "for" counted from now refines it, capped at the
// end of that second: never early, and a message republished long after it
// was stamped (for example by a requeuer) is not delayed a second time.
func dueTime(metadata message.Metadata, now time.Time) (time.Time, bool, error) {
	untilText := metadata.Get(delay.DelayedUntilKey)
	forText := metadata.Get(delay.DelayedForKey)
	if untilText == "" && forText == "" {
		return time.Time{}, false, nil
	}
	var (
		until, byDuration time.Time
		err               error
	)
	if untilText != "" {
		until, err = time.Parse(time.RFC3339Nano, untilText)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("metadata %s: %w", delay.DelayedUntilKey, err)
		}
	}
	if forText != "" {
		d, err := time.ParseDuration(forText)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("metadata %s: %w", delay.DelayedForKey, err)
		}
		byDuration = now.Add(d)
	}
	switch {
	case untilText == "":
		return byDuration, true, nil
	case forText == "":
		return until, true, nil
	case byDuration.After(until) && until.Nanosecond() == 0:
		// "until" was cut to its second, so the stamped due time lies in
		// [until, until+1s): "for" from now is at most the publish delay late,
		// and until+1s bounds a message republished long after its stamp.
		if latest := until.Add(time.Second); byDuration.After(latest) {
			return latest, true, nil
		}
		return byDuration, true, nil
	default:
		return until, true, nil
	}
}

// encodeDelayedMember builds a sorted-set member (wire.EncodeDelayedMember)
// from entry fields, under a new delayed ID.
func encodeDelayedMember(fields map[string]interface{}) (id string, member string, err error) {
	id = watermill.NewULID()
	member, err = wire.EncodeDelayedMember(id, fields)
	return id, member, err
}

func scoreOf(t time.Time) string {
	return strconv.FormatInt(dueScore(t), 10)
}

// dueScore is the sorted-set score of a message due at t, the same the retry
// script gives (scripts.DueScore).
func dueScore(t time.Time) int64 { return scripts.DueScore(t) }
