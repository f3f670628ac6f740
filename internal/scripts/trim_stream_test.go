package scripts

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTrimStream(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("s")
	// Entries from long ago (millisecond 1), so any retention shorter than
	// the age of the clock leaves them older than the cutoff.
	for _, id := range []string{"1-1", "1-2", "1-3", "1-4"} {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: id, Values: []interface{}{"n", id}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 2, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.XAck(ctx, stream, "g", "1-1").Err(); err != nil {
		t.Fatal(err)
	}
	// g has read 1-1 and 1-2, acked 1-1: it needs 1-2 on.

	dry, err := TrimStream.Run(ctx, client, TrimStreamArgs{Stream: stream, UnreadCountLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Trimmed != 0 || dry.MinID != "1-2" || dry.Length != 4 || dry.FirstID != "1-1" || dry.Cutoff == "0-0" {
		t.Errorf("dry run = %+v; want nothing trimmed, 1-2 the first ID needed", dry)
	}
	want := TrimStreamGroup{Name: "g", NeededFrom: "1-2", Pending: 1, OldestPendingID: "1-2", Unread: 2, UnreadExact: true, LastDeliveredID: "1-2", HeldFrom: "1-2"}
	if len(dry.Groups) != 1 || dry.Groups[0] != want {
		t.Errorf("groups = %+v, want [%+v]", dry.Groups, want)
	}

	// A retention longer than the clock's age keeps everything: the cutoff
	// is 0-0, and nobody is held back by it.
	all, err := TrimStream.Run(ctx, client, TrimStreamArgs{Stream: stream, RetainAcked: 100 * 365 * 24 * time.Hour, Trim: true, UnreadCountLimit: 10})
	if err != nil || all.Trimmed != 0 || all.Cutoff != "0-0" || all.Groups[0].HeldFrom != "" {
		t.Errorf("long retention: %+v, %v; want nothing trimmed, cutoff 0-0", all, err)
	}

	trimmed, err := TrimStream.Run(ctx, client, TrimStreamArgs{Stream: stream, Trim: true, UnreadCountLimit: 10})
	if err != nil || trimmed.Trimmed != 1 || trimmed.Length != 3 || trimmed.FirstID != "1-2" {
		t.Errorf("trim = %+v, %v; want 1-1 removed", trimmed, err)
	}

	// Without lag (a deletion after the group's position) unread entries
	// are counted up to UnreadCountLimit, then marked as a lower bound.
	if err := client.XDel(ctx, stream, "1-3").Err(); err != nil {
		t.Fatal(err)
	}
	counted, err := TrimStream.Run(ctx, client, TrimStreamArgs{Stream: stream, UnreadCountLimit: 1})
	if err != nil || len(counted.Groups) != 1 {
		t.Fatalf("count limit 1: %+v, %v", counted, err)
	}
	if g := counted.Groups[0]; g.Unread != 1 || g.UnreadExact {
		t.Errorf("count limit 1: unread %d exact %v; want 1 as a lower bound", g.Unread, g.UnreadExact)
	}

	none, err := TrimStream.Run(ctx, client, TrimStreamArgs{Stream: k.key("missing"), Trim: true, UnreadCountLimit: 10})
	if err != nil || none.MinID != "" || none.Length != 0 || none.FirstID != "" || len(none.Groups) != 0 {
		t.Errorf("no stream: %+v, %v", none, err)
	}

	for _, args := range []TrimStreamArgs{{RetainAcked: -time.Second, UnreadCountLimit: 1}, {}} {
		if _, err := TrimStream.Run(ctx, nil, args); err == nil || !strings.Contains(err.Error(), "script trim_stream: bad arguments") {
			t.Errorf("%+v: err = %v, want one naming the script", args, err)
		}
	}
}

// The retention report queues the script with its source, so it works on a
// pipeline whatever the server has cached.
func TestTrimStreamQueueSource(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("s")
	streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"})
	pipe := client.Pipeline()
	args := TrimStreamArgs{Stream: stream, UnreadCountLimit: 10}
	raw := TrimStream.QueueSource(ctx, pipe, args).Cmd
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if raw.Args()[0] != "eval" {
		t.Errorf("queued %v, want EVAL", raw.Args()[0])
	}
	res, err := TrimStream.ReplyOf(raw, args)
	if err != nil || res.Length != 1 || len(res.Groups) != 1 || res.Groups[0].Unread != 1 {
		t.Errorf("reply = %+v, %v", res, err)
	}
}
