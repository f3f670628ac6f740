package scripts

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRequeuePoisoned(t *testing.T) {
	ctx, client, k := setup(t)
	poison, topic, retry, wrongType := k.key("poison"), k.key("topic"), k.key("retry"), k.key("string")
	var ids []string
	for i := range 3 {
		id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: poison, Values: []interface{}{"i", i}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := client.Set(ctx, wrongType, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	f := func(v string) map[string]interface{} { return map[string]interface{}{"payload": v, "metadata": "m"} }
	out, err := RequeuePoisoned.Run(ctx, client, RequeuePoisonedArgs{PoisonStream: poison, Messages: []PoisonedMessage{
		{PoisonID: ids[0], Target: topic, Fields: f("a")},
		{PoisonID: "1-1", Target: topic, Fields: f("gone")},
		{PoisonID: ids[1], Target: retry, Fields: f("b")},
		{PoisonID: ids[2], Target: wrongType, Fields: f("c")},
	}})
	if err != nil || len(out) != 4 {
		t.Fatalf("RequeuePoisoned = %+v, %v", out, err)
	}
	if e := onlyEntry(t, client, topic); out[0].NewID != e.ID || out[0].Gone || out[0].AddError != "" || !reflect.DeepEqual(e.Values, f("a")) {
		t.Errorf("first: %+v, topic holds %+v", out[0], e)
	}
	if out[1] != (RequeueOutcome{Gone: true}) {
		t.Errorf("missing poison entry: %+v, want gone", out[1])
	}
	if e := onlyEntry(t, client, retry); out[2].NewID != e.ID || !reflect.DeepEqual(e.Values, f("b")) {
		t.Errorf("third: %+v, retry stream holds %+v", out[2], e)
	}
	if out[3].NewID != "" || !strings.Contains(out[3].AddError, "WRONGTYPE") {
		t.Errorf("refused target: %+v, want Redis's WRONGTYPE error", out[3])
	}
	if e := onlyEntry(t, client, poison); e.ID != ids[2] {
		t.Errorf("poison stream keeps %s, want only the refused %s", e.ID, ids[2])
	}

	for _, args := range []RequeuePoisonedArgs{{PoisonStream: poison}, {PoisonStream: poison, Messages: []PoisonedMessage{{PoisonID: ids[2], Target: topic}}}} {
		if _, err := RequeuePoisoned.Run(ctx, nil, args); err == nil || !strings.Contains(err.Error(), "script requeue_poisoned: bad arguments") {
			t.Errorf("%+v: err = %v, want one naming the script", args, err)
		}
	}
	cmd := redis.NewCmd(ctx)
	cmd.SetVal([]interface{}{"1-0"})
	if _, err := RequeuePoisoned.ReplyOf(cmd, RequeuePoisonedArgs{Messages: make([]PoisonedMessage, 2)}); err == nil {
		t.Error("a reply with fewer items than messages parsed")
	}
}

func TestRequeuePoisonedCrossSlot(t *testing.T) {
	ctx, client, k := setup(t)
	target, marker := k.key("target"), k.key("marker")
	args := RequeuePoisonedCrossSlotArgs{Target: target, Marker: marker, MarkerTTL: time.Hour, Fields: map[string]interface{}{"payload": "p"}}

	first, err := RequeuePoisonedCrossSlot.Run(ctx, client, args)
	if err != nil || first == "" {
		t.Fatalf("first = %q, %v", first, err)
	}
	// A second requeue of the same poison entry finds the marker.
	again, err := RequeuePoisonedCrossSlot.Run(ctx, client, args)
	if err != nil || again != first {
		t.Errorf("again = %q, %v; want %q", again, err, first)
	}
	if e := onlyEntry(t, client, target); e.ID != first || e.Values["payload"] != "p" {
		t.Errorf("target holds %+v", e)
	}
	if ttl := client.PTTL(ctx, marker).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("marker lives %v, want up to an hour", ttl)
	}

	// Queued on a pipeline, as the admin sends a batch.
	if err := RequeuePoisonedCrossSlot.Load(ctx, client); err != nil {
		t.Fatal(err)
	}
	pipe := client.Pipeline()
	cmd := RequeuePoisonedCrossSlot.Queue(ctx, pipe, args)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := cmd.Reply(); err != nil || id != first {
		t.Errorf("queued = %q, %v; want %q", id, err, first)
	}

	for _, bad := range []RequeuePoisonedCrossSlotArgs{{MarkerTTL: time.Microsecond, Fields: args.Fields}, {MarkerTTL: time.Hour}} {
		if _, err := RequeuePoisonedCrossSlot.Run(ctx, nil, bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestRunDelayedNow(t *testing.T) {
	ctx, client, k := setup(t)
	delayed, stream := k.key("delayed"), k.key("s")
	if err := client.ZAdd(ctx, delayed, redis.Z{Score: 1e15, Member: "m1"}, redis.Z{Score: 1e15, Member: "m2"}).Err(); err != nil {
		t.Fatal(err)
	}
	ids, err := RunDelayedNow.Run(ctx, client, RunDelayedNowArgs{Delayed: delayed, Stream: stream, Messages: []DelayedMessage{
		{Member: "m1", Fields: map[string]interface{}{"payload": "1"}},
		{Member: "absent", Fields: map[string]interface{}{"payload": "x"}},
		{Member: "m2", Fields: map[string]interface{}{"payload": "2"}},
	}})
	if err != nil || len(ids) != 3 || ids[0] == "" || ids[1] != "" || ids[2] == "" {
		t.Fatalf("RunDelayedNow = %q, %v; want new IDs for m1 and m2, none for the absent member", ids, err)
	}
	entries, err := client.XRange(ctx, stream, "-", "+").Result()
	if err != nil || len(entries) != 2 || entries[0].ID != ids[0] || entries[1].Values["payload"] != "2" {
		t.Errorf("stream = %+v, %v", entries, err)
	}
	if n := client.ZCard(ctx, delayed).Val(); n != 0 {
		t.Errorf("delayed set keeps %d members", n)
	}
	if _, err := RunDelayedNow.Run(ctx, nil, RunDelayedNowArgs{Delayed: delayed, Stream: stream}); err == nil {
		t.Error("no messages: no error")
	}
}
