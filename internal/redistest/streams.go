package redistest

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// AddEntriesAt adds n entries to stream with explicit IDs <ms>-1 … <ms>-n,
// so their age is known however slowly the test runs, and returns the IDs.
func AddEntriesAt(tb testing.TB, client redis.UniversalClient, stream string, ms int64, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	pipe := client.Pipeline()
	for i := range ids {
		ids[i] = fmt.Sprintf("%d-%d", ms, i+1)
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: ids[i], Values: map[string]interface{}{"payload": fmt.Sprint(i)}})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		tb.Fatalf("redistest: XADD to %s: %v", stream, err)
	}
	return ids
}

// ReadGroup reads up to n new entries of stream as consumer "c1" of group,
// without blocking, and returns their IDs; they stay pending until acked.
func ReadGroup(tb testing.TB, client redis.UniversalClient, stream, group string, n int) []string {
	tb.Helper()
	res, err := client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: group, Consumer: "c1", Streams: []string{stream, ">"}, Count: int64(n), Block: -1,
	}).Result()
	if err != nil && err != redis.Nil {
		tb.Fatalf("redistest: XREADGROUP %s %s: %v", stream, group, err)
	}
	var ids []string
	for _, st := range res {
		for _, m := range st.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Ack acks ids in group on stream.
func Ack(tb testing.TB, client redis.UniversalClient, stream, group string, ids ...string) {
	tb.Helper()
	if len(ids) == 0 {
		return
	}
	if err := client.XAck(context.Background(), stream, group, ids...).Err(); err != nil {
		tb.Fatalf("redistest: XACK %s %s: %v", stream, group, err)
	}
}
