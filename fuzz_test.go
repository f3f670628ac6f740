package redrive

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive/internal/wire"
)

// Fuzz targets for everything redrive decodes from Redis or from message
// metadata written by someone else. Seed corpora live in testdata/fuzz; CI
// runs each target for a few seconds (.ci/run). The property is always the
// same: never a panic, and either a sound result or an error that says what
// was wrong.

// FuzzDecodeEntry feeds wire.DecodeEntry stream entries as a foreign producer (or
// a corrupted one) could have written them with XADD: any subset of the
// three wire-format fields, with arbitrary bytes in each, plus one extra
// field, and sometimes a value that is not a string.
func FuzzDecodeEntry(f *testing.F) {
	md, _ := msgpack.Marshal(map[string]string{"k": "v", "\x00bin\xff": "\xfe\x00"})
	f.Add("uuid-1", []byte("payload"), md, "", []byte(nil), uint8(0b0111))
	f.Add("", []byte("plain XADD from another language"), []byte(nil), "source", []byte("python"), uint8(0b1010))
	f.Add("uuid-2", []byte{}, []byte{0xc1}, "", []byte(nil), uint8(0b0101))
	f.Add("uuid-3", []byte("p"), []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "", []byte(nil), uint8(0b0111))
	f.Add("uuid-4", []byte("p"), []byte{0x81, 0xa1, 'k', 0x81, 0xa1, 'x', 0x01}, "", []byte(nil), uint8(0b0111))
	f.Add("", []byte(nil), []byte(nil), "only", []byte("foreign"), uint8(0b1000))
	f.Add("uuid-5", []byte("p"), md, "n", []byte("1"), uint8(0b11111))

	f.Fuzz(func(t *testing.T, uuid string, payload, metadata []byte, extraKey string, extraValue []byte, present uint8) {
		values := map[string]interface{}{}
		if present&1 != 0 {
			values[UUIDHeaderKey] = uuid
		}
		if present&2 != 0 {
			values[wire.PayloadField] = string(payload)
		}
		if present&4 != 0 {
			values[wire.MetadataField] = string(metadata)
		}
		if present&8 != 0 {
			values[extraKey] = string(extraValue)
		}
		if present&16 != 0 {
			// go-redis hands over strings, but a custom client or a script
			// reply may not.
			values[extraKey] = extraValue
		}
		msg, err := wire.DecodeEntry(DefaultMarshallerUnmarshaller{}, "1700000000000-7", values)
		if err != nil {
			if !errors.Is(err, wire.ErrUndecodable) {
				t.Fatalf("error does not wrap wire.ErrUndecodable: %v", err)
			}
			if strings.Contains(err.Error(), "panicked") {
				t.Fatalf("the default unmarshaller panicked: %v", err)
			}
			if msg != nil {
				t.Fatalf("a message and an error: %v", err)
			}
			return
		}
		if msg == nil {
			t.Fatal("no message and no error")
		}
		wantUUID, hasUUID := values[UUIDHeaderKey].(string)
		if !hasUUID {
			wantUUID = "1700000000000-7"
		}
		if msg.UUID != wantUUID {
			t.Fatalf("UUID %q, want %q", msg.UUID, wantUUID)
		}
		if p, _ := values[wire.PayloadField].(string); string(msg.Payload) != p {
			t.Fatalf("payload %q, want %q", msg.Payload, p)
		}
	})
}

// FuzzDecodeDelayedMember feeds wire.DecodeDelayedMember arbitrary sorted-set
// members and scores, and checks that members redrive encodes decode back to
// the same fields.
func FuzzDecodeDelayedMember(f *testing.F) {
	_, member, _ := encodeDelayedMember(map[string]interface{}{
		UUIDHeaderKey: "uuid-1", wire.PayloadField: []byte("payload\x00\xff"), wire.MetadataField: []byte{0x80},
	})
	f.Add([]byte(member), 1.7e12, "k", []byte("v"))
	f.Add([]byte{0x90}, 0.0, "", []byte(nil))                        // empty array
	f.Add([]byte{0x92, 0xa1, 'i', 0xa1, 'k'}, 1.0, "k", []byte(nil)) // even length
	f.Add([]byte{0x93, 0x01, 0xa1, 'k', 0xa1, 'v'}, -1.0, "", []byte(nil))
	f.Add([]byte{0x93, 0xa1, 'i', 0x01, 0xa1, 'v'}, math.NaN(), "", []byte(nil))
	f.Add([]byte{0x93, 0xa1, 'i', 0xa1, 'k', 0xc0}, math.Inf(1), "", []byte(nil))
	f.Add([]byte{0x93, 0xa1, 'i', 0xa1, 'k', 0x81, 0x01, 0x02}, 1e300, "", []byte(nil))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, 0.0, "", []byte(nil)) // huge array header
	f.Add([]byte("not msgpack"), 0.0, "", []byte(nil))

	f.Fuzz(func(t *testing.T, member []byte, score float64, key string, value []byte) {
		e, err := wire.DecodeDelayedMember(string(member), score)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode delayed message") {
				t.Fatalf("unclear error: %v", err)
			}
		} else if e.Fields == nil || e.Member != string(member) {
			t.Fatalf("decoded %+v from %q", e, member)
		}

		// Round trip of what the publisher writes.
		fields := map[string]interface{}{key: value}
		_, encoded, err := encodeDelayedMember(fields)
		if err != nil {
			t.Fatalf("encode %q: %v", fields, err)
		}
		back, err := wire.DecodeDelayedMember(encoded, 1)
		if err != nil {
			t.Fatalf("decode what was encoded: %v", err)
		}
		if len(back.Fields) != 1 || back.Fields[key] != string(value) {
			t.Fatalf("round trip: %q, want %q=%q", back.Fields, key, value)
		}
	})
}

// FuzzDueTime feeds dueTime arbitrary delay metadata.
func FuzzDueTime(f *testing.F) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	f.Add("", "", now.UnixNano())
	f.Add("2025-01-02T03:04:06Z", "500ms", now.UnixNano())
	f.Add("2025-01-02T03:04:06Z", "", now.UnixNano())
	f.Add("", "1h", now.UnixNano())
	f.Add("", "-5s", now.UnixNano())
	f.Add("yesterday", "", now.UnixNano())
	f.Add("", "5 seconds", now.UnixNano())
	f.Add("9999-12-31T23:59:59.999999999+23:59", "2562047h", int64(math.MaxInt64))
	f.Add("0000-01-01T00:00:00Z", "-2562047h", int64(math.MinInt64))

	f.Fuzz(func(t *testing.T, until, forText string, nowNanos int64) {
		now := time.Unix(0, nowNanos)
		md := message.Metadata{}
		if until != "" {
			md.Set(delay.DelayedUntilKey, until)
		}
		if forText != "" {
			md.Set(delay.DelayedForKey, forText)
		}
		due, delayed, err := dueTime(md, now)
		if err != nil {
			if delayed || !due.IsZero() {
				t.Fatalf("an error and a due time %v: %v", due, err)
			}
			if !strings.Contains(err.Error(), delay.DelayedUntilKey) && !strings.Contains(err.Error(), delay.DelayedForKey) {
				t.Fatalf("error does not name the metadata key: %v", err)
			}
			return
		}
		if delayed != (until != "" || forText != "") {
			t.Fatalf("delayed=%v for until=%q for=%q", delayed, until, forText)
		}
		if until != "" {
			// Never before the "until" time the message carries.
			u, _ := time.Parse(time.RFC3339Nano, until)
			if due.Before(u) {
				t.Fatalf("due %v before until %v", due, u)
			}
		}
		// The publisher turns the due time into a score; that must not panic.
		_ = scoreOf(due)
	})
}
