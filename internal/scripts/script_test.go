package scripts

import (
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
