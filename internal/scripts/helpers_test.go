package scripts

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
)

// testKeys names keys of one test in one hash slot, and deletes them when
// the test ends.
type testKeys struct {
	tag   string
	mu    sync.Mutex
	names []string
}

func newTestKeys(t *testing.T, client *redis.Client) *testKeys {
	k := &testKeys{tag: "{" + redistest.RandomTopic("scripts-test-") + "}"}
	t.Cleanup(func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(k.names) > 0 {
			_ = client.Del(context.Background(), k.names...).Err()
		}
	})
	return k
}

func (k *testKeys) key(name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	full := k.tag + ":" + name
	k.names = append(k.names, full)
	return full
}

func setup(t *testing.T) (context.Context, *redis.Client, *testKeys) {
	t.Helper()
	t.Parallel()
	client := redistest.NewClient(t)
	return context.Background(), client, newTestKeys(t, client)
}

// streamWithGroup adds entries with the given values to a new stream with
// group g created before them, and returns their IDs.
func streamWithGroup(t *testing.T, client *redis.Client, stream string, values ...map[string]interface{}) []string {
	t.Helper()
	ctx := context.Background()
	if err := client.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatalf("create group: %v", err)
	}
	ids := make([]string, len(values))
	for i, v := range values {
		id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: v}).Result()
		if err != nil {
			t.Fatalf("add entry: %v", err)
		}
		ids[i] = id
	}
	return ids
}

// readAs reads every new entry of stream as consumer of group g.
func readAs(t *testing.T, client *redis.Client, stream, consumer string) {
	t.Helper()
	_, err := client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: "g", Consumer: consumer, Streams: []string{stream, ">"}, Count: 100, Block: -1,
	}).Result()
	if err != nil {
		t.Fatalf("read as %s: %v", consumer, err)
	}
}

func pendingCount(t *testing.T, client *redis.Client, stream string) int64 {
	t.Helper()
	p, err := client.XPending(context.Background(), stream, "g").Result()
	if err != nil {
		t.Fatalf("pending of %s: %v", stream, err)
	}
	return p.Count
}

func xlen(t *testing.T, client *redis.Client, stream string) int64 {
	t.Helper()
	n, err := client.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("length of %s: %v", stream, err)
	}
	return n
}

func onlyEntry(t *testing.T, client *redis.Client, stream string) redis.XMessage {
	t.Helper()
	msgs, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("entries of %s = %v, %v; want exactly one", stream, msgs, err)
	}
	return msgs[0]
}
