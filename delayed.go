package redrive

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
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
// Each member is a msgpack array: [delayed ID, field, value, field, value, ...].
// The ID keeps members unique (two identical messages are two members) and
// names the message for inspection and "run now". The fields are the stream
// entry exactly as the Marshaller produced it, so the Lua mover (which unpacks
// with cmsgpack) adds it to the stream without knowing the wire format.

// encodeDelayedMember builds a sorted-set member from entry fields.
func encodeDelayedMember(fields map[string]interface{}) (id string, member string, err error) {
	id = watermill.NewULID()
	arr := make([]interface{}, 0, 1+2*len(fields))
	arr = append(arr, id)
	for k, v := range fields {
		s, err := fieldString(v)
		if err != nil {
			return "", "", fmt.Errorf("encode delayed message field %q: %w", k, err)
		}
		arr = append(arr, k, s)
	}
	b, err := msgpack.Marshal(arr)
	if err != nil {
		return "", "", fmt.Errorf("encode delayed message: %w", err)
	}
	return id, string(b), nil
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
	// Decoded element by element, as strings: msgpack allocates what a
	// header announces, so a corrupt member of a few bytes claiming billions
	// of elements (an array) or bytes (a bin) would crash the process out of
	// memory. DecodeString grows its buffer only as bytes arrive.
	d := msgpack.NewDecoder(strings.NewReader(member))
	n, err := d.DecodeArrayLen()
	if err != nil {
		return DelayedEntry{}, fmt.Errorf("decode delayed message: %w", err)
	}
	if n < 1 || n%2 != 1 || n > len(member) {
		return DelayedEntry{}, fmt.Errorf("decode delayed message: %d elements, want an ID and field/value pairs", n)
	}
	arr := make([]interface{}, n)
	for i := range arr {
		code, err := d.PeekCode()
		if err != nil {
			return DelayedEntry{}, fmt.Errorf("decode delayed message: element %d: %w", i, err)
		}
		switch {
		case msgpcode.IsString(code) || msgpcode.IsBin(code) || code == msgpcode.Nil:
			arr[i], err = d.DecodeString()
		case msgpcode.IsFixedNum(code) || (code >= msgpcode.False && code <= msgpcode.Int64 && !msgpcode.IsBin(code) && !msgpcode.IsExt(code)):
			arr[i], err = d.DecodeInterface() // a number or a bool: fixed size
		default:
			return DelayedEntry{}, fmt.Errorf("decode delayed message: element %d has msgpack type 0x%02x, want a string", i, code)
		}
		if err != nil {
			return DelayedEntry{}, fmt.Errorf("decode delayed message: element %d: %w", i, err)
		}
	}
	id, ok := arr[0].(string)
	if !ok {
		return DelayedEntry{}, fmt.Errorf("decode delayed message: ID is %T", arr[0])
	}
	fields := make(map[string]interface{}, len(arr)/2)
	for i := 1; i < len(arr); i += 2 {
		k, ok := arr[i].(string)
		if !ok {
			return DelayedEntry{}, fmt.Errorf("decode delayed message %s: field name is %T", id, arr[i])
		}
		switch v := arr[i+1].(type) {
		case string:
			fields[k] = v
		case []byte:
			fields[k] = string(v)
		case nil:
			fields[k] = ""
		default:
			fields[k] = fmt.Sprint(v)
		}
	}
	return DelayedEntry{ID: id, DueAt: time.UnixMilli(int64(score)), Fields: fields, Member: member}, nil
}

func scoreOf(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
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
