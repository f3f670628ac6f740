package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redrive-go/redrive/internal/entryfields"
)

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

// MemberPrefix starts every member, so the format can evolve. The script that
// moves due members (internal/scripts, move_due.lua) receives it in ARGV.
const MemberPrefix = "rd1:"

// EncodeDelayedMember builds the sorted-set member for a message with these
// stream entry fields, named id.
func EncodeDelayedMember(id string, fields map[string]interface{}) (string, error) {
	names := entryfields.Names(fields)
	var b strings.Builder
	b.WriteString(MemberPrefix)
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

// DecodeDelayedMember parses a sorted-set member written by
// EncodeDelayedMember (of a topic's delayed set or a group's retry delayed
// set); score is the member's score, its due time in Unix milliseconds.
func DecodeDelayedMember(member string, score float64) (DelayedEntry, error) {
	rest, ok := strings.CutPrefix(member, MemberPrefix)
	if !ok {
		return DelayedEntry{}, fmt.Errorf("decode delayed message: does not start with %q", MemberPrefix)
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
