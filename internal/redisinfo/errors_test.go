package redisinfo

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
)

// replies holds one real error reply of each kind, from the shared server,
// plus one from a server at maxmemory for OOM.
func replies(t *testing.T) map[string]error {
	ctx := context.Background()
	client := redistest.NewClient(t)
	stream := redistest.RandomTopic("redisinfo")
	t.Cleanup(func() { client.Del(context.Background(), stream) })

	got := map[string]error{}
	got["NOGROUP"] = client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Block: -1}).Err()
	got["no such key"] = client.XInfoGroups(ctx, stream).Err()
	if err := client.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	got["BUSYGROUP"] = client.XGroupCreateMkStream(ctx, stream, "g", "0").Err()
	got["NOSCRIPT"] = client.EvalSha(ctx, "0123456789012345678901234567890123456789", []string{stream}).Err()

	full := redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: []string{"--maxmemory", "1", "--maxmemory-policy", "noeviction"}}).Client(t)
	got["OOM"] = full.XGroupCreateMkStream(ctx, stream, "g", "0").Err()

	for kind, err := range got {
		if err == nil {
			t.Fatalf("the command meant to get %s succeeded", kind)
		}
	}
	return got
}

func TestErrorClassifiers(t *testing.T) {
	classifiers := map[string]func(error) bool{
		"NOGROUP":     IsNoGroup,
		"BUSYGROUP":   IsBusyGroup,
		"OOM":         IsOOM,
		"NOSCRIPT":    IsNoScript,
		"no such key": IsNoSuchKey,
	}
	got := replies(t)
	for name, is := range classifiers {
		for kind, err := range got {
			want := kind == name
			if is(err) != want {
				t.Errorf("%s classifier on %s reply %q = %v, want %v", name, kind, err, !want, want)
			}
			if wrapped := fmt.Errorf("redrive: doing something: %w", err); is(wrapped) != want {
				t.Errorf("%s classifier on wrapped %s reply %q = %v, want %v", name, kind, wrapped, !want, want)
			}
		}
		// Text that merely looks like a reply is not one.
		if is(errors.New(name + " look-alike")) {
			t.Errorf("%s classifier matched an error that is not a Redis reply", name)
		}
		if is(nil) {
			t.Errorf("%s classifier matched nil", name)
		}
	}
}
