package redrive

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive/internal/entryfields"
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

// Delayed messages wait in a sorted set scored by due time in milliseconds.
// Each member is
//
//	rd1:<delayed ID>:<len>:<field><len>:<value><len>:<field><len>:<value>…
//
// with lengths in decimal bytes, fields sorted by name. The ID keeps members
// unique (two identical messages are two members) and names the message for
// inspection and "run now". The fields are the stream entry exactly as the
// Marshaller produced it, so the Lua mover adds it to the stream without
// knowing the wire format. Length prefixes parse with plain string functions,
// in Redis's Lua and in embedded test servers alike, and are binary-safe.

// delayedMemberVersion starts every member, so the format can evolve.
const delayedMemberVersion = "rd1:"

// encodeDelayedMember builds a sorted-set member from entry fields.
func encodeDelayedMember(fields map[string]interface{}) (id string, member string, err error) {
	id = watermill.NewULID()
	member, err = encodeDelayedMemberWithID(id, fields)
	return id, member, err
}

func encodeDelayedMemberWithID(id string, fields map[string]interface{}) (string, error) {
	names := entryfields.Names(fields)
	var b strings.Builder
	b.WriteString(delayedMemberVersion)
	b.WriteString(id)
	b.WriteByte(':')
	for _, k := range names {
		v, err := fieldString(fields[k])
		if err != nil {
			return "", fmt.Errorf("encode delayed message field %q: %w", k, err)
		}
		for _, part := range [2]string{k, v} {
			b.WriteString(strconv.Itoa(len(part)))
			b.WriteByte(':')
			b.WriteString(part)
		}
	}
	return b.String(), nil
}

// DelayedEntry is a message waiting in a delayed set.
type DelayedEntry struct {
	// ID names the delayed message.
	ID string
	// DueAt is when it enters the stream.
	DueAt time.Time
	// Fields are the stream entry fields it will be written with.
	Fields map[string]interface{}
	// Member is the raw sorted-set member.
	Member string
}

// decodeDelayedMember parses a sorted-set member written by encodeDelayedMember.
func decodeDelayedMember(member string, score float64) (DelayedEntry, error) {
	rest, ok := strings.CutPrefix(member, delayedMemberVersion)
	if !ok {
		return DelayedEntry{}, fmt.Errorf("decode delayed message: does not start with %q", delayedMemberVersion)
	}
	id, rest, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return DelayedEntry{}, errors.New("decode delayed message: no ID")
	}
	var parts []string
	for rest != "" {
		lenText, after, ok := strings.Cut(rest, ":")
		if !ok {
			return DelayedEntry{}, fmt.Errorf("decode delayed message %s: element %d has no length", id, len(parts))
		}
		n, err := strconv.Atoi(lenText)
		if err != nil || n < 0 || n > len(after) {
			return DelayedEntry{}, fmt.Errorf("decode delayed message %s: element %d has a bad length %q", id, len(parts), lenText)
		}
		parts = append(parts, after[:n])
		rest = after[n:]
	}
	if len(parts) == 0 || len(parts)%2 != 0 {
		return DelayedEntry{}, fmt.Errorf("decode delayed message %s: %d elements, want field/value pairs", id, len(parts))
	}
	fields := make(map[string]interface{}, len(parts)/2)
	for i := 0; i < len(parts); i += 2 {
		fields[parts[i]] = parts[i+1]
	}
	return DelayedEntry{ID: id, DueAt: time.UnixMilli(int64(score)), Fields: fields, Member: member}, nil
}

func scoreOf(t time.Time) string {
	return strconv.FormatInt(dueScore(t), 10)
}

// dueScore is the sorted-set score of a message due at t: t in Unix
// milliseconds, rounded up. Rounded down, a message due at 5.7 ms would be
// moved once the clock reads 5.0 ms, and could be delivered before its due
// time.
func dueScore(t time.Time) int64 {
	const ms = int64(time.Millisecond)
	return (t.UnixNano() + ms - 1) / ms
}

// fieldString converts a field value the way go-redis would send it, so the
// Lua side always sees strings (a msgpack nil would end the field list early).
func fieldString(v interface{}) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case nil:
		return "", nil
	case fmt.Stringer:
		return v.String(), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, bool:
		return fmt.Sprint(v), nil
	default:
		return "", fmt.Errorf("unsupported field value type %T", v)
	}
}
