package scripts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/wire"
)

func TestMoveDue(t *testing.T) {
	ctx, client, k := setup(t)
	delayed, stream := k.key("delayed"), k.key("s")
	now := time.UnixMilli(1_700_000_000_000)
	member, err := wire.EncodeDelayedMember("d1", map[string]interface{}{"payload": "p", "metadata": "m"})
	if err != nil {
		t.Fatal(err)
	}
	// The prefix the script is given decides what it can decode: a member of
	// another format version is written raw under CorruptDelayedField.
	otherVersion := "rd9:" + strings.TrimPrefix(member, wire.MemberPrefix)
	later := now.Add(time.Hour)
	if err := client.ZAdd(ctx, delayed,
		redis.Z{Score: float64(now.UnixMilli() - 1), Member: member},
		redis.Z{Score: float64(now.UnixMilli()), Member: otherVersion},
		redis.Z{Score: float64(later.UnixMilli()), Member: "rd1:late:1:x1:y"},
	).Err(); err != nil {
		t.Fatal(err)
	}

	res, err := MoveDue.Run(ctx, client, MoveDueArgs{Delayed: delayed, Stream: stream, Now: now, Limit: 1})
	if err != nil || res.Moved != 1 || !res.Next.Equal(now) {
		t.Fatalf("Limit 1: %+v, %v; want 1 moved and the next due at %v", res, err, now)
	}
	res, err = MoveDue.Run(ctx, client, MoveDueArgs{Delayed: delayed, Stream: stream, Now: now, Limit: 10})
	if err != nil || res.Moved != 1 || !res.Next.Equal(later) {
		t.Fatalf("%+v, %v; want 1 moved and the next due at %v", res, err, later)
	}
	entries, err := client.XRange(ctx, stream, "-", "+").Result()
	if err != nil || len(entries) != 2 {
		t.Fatalf("stream = %v, %v", entries, err)
	}
	if v := entries[0].Values; len(v) != 2 || v["payload"] != "p" || v["metadata"] != "m" {
		t.Errorf("decoded member entered as %v", v)
	}
	if v := entries[1].Values; len(v) != 1 || v[CorruptDelayedField] != otherVersion {
		t.Errorf("undecodable member entered as %v, want it under %s", v, CorruptDelayedField)
	}

	if err := client.ZRem(ctx, delayed, "rd1:late:1:x1:y").Err(); err != nil {
		t.Fatal(err)
	}
	res, err = MoveDue.Run(ctx, client, MoveDueArgs{Delayed: delayed, Stream: stream, Now: now, Limit: 10})
	if err != nil || res.Moved != 0 || !res.Next.IsZero() {
		t.Errorf("empty set: %+v, %v; want nothing moved and no next time", res, err)
	}
}

// Maxlen reaches XADD: Redis trims approximately, in whole nodes of 100
// entries, so the stream is filled past a few nodes first.
func TestMoveDueMaxlen(t *testing.T) {
	ctx, client, k := setup(t)
	delayed, stream := k.key("delayed"), k.key("s")
	pipe := client.Pipeline()
	for i := range 350 {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []interface{}{"n", fmt.Sprint(i)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	member, _ := wire.EncodeDelayedMember("d1", map[string]interface{}{"payload": "p"})
	if err := client.ZAdd(ctx, delayed, redis.Z{Score: 1, Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := MoveDue.Run(ctx, client, MoveDueArgs{Delayed: delayed, Stream: stream, Now: time.UnixMilli(1), Limit: 10, Maxlen: 1})
	if err != nil || res.Moved != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	if n := xlen(t, client, stream); n > 200 {
		t.Errorf("stream has %d entries after a move with Maxlen 1; want it trimmed", n)
	}
}

func TestMoveDueBadInput(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Bad arguments are refused before anything is sent: no client needed.
	for _, args := range []MoveDueArgs{{Limit: 0}, {Limit: 1, Maxlen: -1}} {
		if _, err := MoveDue.Run(ctx, nil, args); err == nil || !strings.Contains(err.Error(), "script move_due: bad arguments") {
			t.Errorf("%+v: err = %v, want one naming the script", args, err)
		}
	}
	for _, reply := range []interface{}{int64(1), []interface{}{int64(1)}, []interface{}{"1", nil}, []interface{}{int64(1), "soon"}} {
		cmd := redis.NewCmd(ctx)
		cmd.SetVal(reply)
		if _, err := MoveDue.ReplyOf(cmd, MoveDueArgs{}); err == nil || !strings.Contains(err.Error(), "script move_due: unexpected reply") {
			t.Errorf("reply %v: err = %v, want one naming the script", reply, err)
		}
	}
}
