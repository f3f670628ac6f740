package scripts

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestFlag(t *testing.T) {
	t.Parallel()
	if flag(true) != "1" || flag(false) != "0" {
		t.Errorf("flag(true), flag(false) = %q, %q; want the \"1\" and \"0\" every script compares with", flag(true), flag(false))
	}
}

func TestReplyBool(t *testing.T) {
	t.Parallel()
	for v, want := range map[interface{}]bool{int64(1): true, int64(0): false} {
		if got, err := replyBool(v); err != nil || got != want {
			t.Errorf("replyBool(%v) = %v, %v; want %v", v, got, err, want)
		}
	}
	for _, v := range []interface{}{int64(2), "1", nil} {
		if _, err := replyBool(v); err == nil {
			t.Errorf("replyBool(%v): no error", v)
		}
	}
}

// Lua false arrives as redis.Nil; Reply hands it to the parser as nil
// instead of failing.
func TestReplyFalseIsNil(t *testing.T) {
	t.Parallel()
	cmd := redis.NewCmd(t.Context())
	cmd.SetErr(redis.Nil)
	res, err := MoveToPoison.ReplyOf(cmd, MoveToPoisonArgs{})
	if err != nil || res.Written {
		t.Errorf("false reply = %+v, %v; want not written, no error", res, err)
	}
}

// Errors from Redis come back unchanged, so callers can classify them.
func TestRedisErrorsUnchanged(t *testing.T) {
	ctx, client, k := setup(t)
	_, err := DeleteIdleConsumer.Run(ctx, client, DeleteIdleConsumerArgs{Stream: k.key("missing"), Group: "g", Consumer: "c"})
	if err == nil {
		t.Fatal("no error for a missing group")
	}
	if _, ok := err.(redis.Error); !ok || !strings.Contains(err.Error(), "NOGROUP") {
		t.Errorf("err = %v (%T), want Redis's own NOGROUP error, not wrapped", err, err)
	}
}

// A reply part that does not parse is named in the error, with the item
// of an array it failed on, and an empty array reads as an empty slice.
func TestReplyPartsNameWhatFailed(t *testing.T) {
	t.Parallel()
	group := []interface{}{"g", "0-0", int64(0), "", int64(0), int64(1), "0-0", ""}
	badGroup := []interface{}{"g", "0-0", "not a count", "", int64(0), int64(1), "0-0", ""}
	reply := func(groups ...interface{}) interface{} {
		return []interface{}{int64(0), "", "1-0", int64(0), "", groups}
	}
	r, err := parseTrimStream(reply(group))
	if err != nil || len(r.Groups) != 1 || r.Groups[0].Name != "g" || !r.Groups[0].UnreadExact {
		t.Fatalf("parseTrimStream = %+v, %v", r, err)
	}
	if r, err := parseTrimStream(reply()); err != nil || r.Groups == nil || len(r.Groups) != 0 {
		t.Errorf("no groups: %+v, %v; want an empty slice", r, err)
	}
	_, err = parseTrimStream(reply(group, badGroup))
	if err == nil || !strings.Contains(err.Error(), "groups: item 1: pending: ") {
		t.Errorf("bad second group: err = %v, want it named", err)
	}
	_, err = parseTrimStream([]interface{}{int64(0), "", "1-0", "many", "", []interface{}{}})
	if err == nil || !strings.Contains(err.Error(), "length: ") {
		t.Errorf("bad length: err = %v, want it named", err)
	}
}

// A reply with one item per message reads Lua false as "gone", and a reply
// with another number of items is refused.
func TestRunDelayedNowReply(t *testing.T) {
	t.Parallel()
	args := RunDelayedNowArgs{Messages: make([]DelayedMessage, 2)}
	reply := func(v interface{}) *redis.Cmd {
		cmd := redis.NewCmd(context.Background())
		cmd.SetVal(v)
		return cmd
	}
	ids, err := RunDelayedNow.ReplyOf(reply([]interface{}{"1-0", nil}), args)
	if err != nil || len(ids) != 2 || ids[0] != "1-0" || ids[1] != "" {
		t.Errorf("ids = %q, %v; want [1-0 \"\"]", ids, err)
	}
	if ids, err := RunDelayedNow.ReplyOf(reply([]interface{}{"1-0"}), args); err == nil {
		t.Errorf("one ID for two messages: %q, want an error", ids)
	}
	if ids, err := RunDelayedNow.ReplyOf(reply([]interface{}{"1-0", int64(3)}), args); err == nil || !strings.Contains(err.Error(), "item 1") {
		t.Errorf("an integer ID: %q, %v; want an error naming item 1", ids, err)
	}
}
