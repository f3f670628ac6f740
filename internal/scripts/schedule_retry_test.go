package scripts

import (
	"testing"
	"time"
)

func TestScheduleRetry(t *testing.T) {
	ctx, client, k := setup(t)
	stream, delayed := k.key("s"), k.key("delayed")
	ids := streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"}, map[string]interface{}{"n": "2"})
	readAs(t, client, stream, "c")
	dueAt := time.UnixMilli(1_700_000_000_000).Add(300 * time.Microsecond)
	args := ScheduleRetryArgs{Stream: stream, Delayed: delayed, Group: "g", EntryID: ids[0], DueAt: dueAt, Member: "m1"}

	scheduled, err := ScheduleRetry.Run(ctx, client, args)
	if err != nil || !scheduled {
		t.Fatalf("ScheduleRetry = %v, %v; want scheduled", scheduled, err)
	}
	score, err := client.ZScore(ctx, delayed, "m1").Result()
	if err != nil || int64(score) != DueScore(dueAt) || int64(score) != 1_700_000_000_001 {
		t.Errorf("score %v, %v; want %d (the due time's millisecond, rounded up)", score, err, DueScore(dueAt))
	}
	if n := pendingCount(t, client, stream); n != 1 {
		t.Errorf("%d pending, want 1: the entry is acked", n)
	}
	if n := xlen(t, client, stream); n != 2 {
		t.Errorf("stream has %d entries, want 2: DeleteEntry false keeps it", n)
	}

	// No longer pending: another consumer settled it, nothing is scheduled.
	args.Member = "m2"
	if scheduled, err = ScheduleRetry.Run(ctx, client, args); err != nil || scheduled {
		t.Errorf("entry no longer pending: %v, %v; want not scheduled", scheduled, err)
	}
	if n := client.ZCard(ctx, delayed).Val(); n != 1 {
		t.Errorf("delayed set has %d members, want 1", n)
	}
	// Unless this consumer acked it itself.
	args.AckedLocally = true
	if scheduled, err = ScheduleRetry.Run(ctx, client, args); err != nil || !scheduled {
		t.Errorf("acked locally: %v, %v; want scheduled", scheduled, err)
	}

	args = ScheduleRetryArgs{Stream: stream, Delayed: delayed, Group: "g", EntryID: ids[1], DeleteEntry: true, DueAt: dueAt, Member: "m3"}
	if scheduled, err = ScheduleRetry.Run(ctx, client, args); err != nil || !scheduled {
		t.Fatalf("DeleteEntry: %v, %v", scheduled, err)
	}
	if e := onlyEntry(t, client, stream); e.ID != ids[0] {
		t.Errorf("left %s in the stream, want %s: DeleteEntry deletes the entry", e.ID, ids[0])
	}
}

func TestDueScoreRoundsUp(t *testing.T) {
	t.Parallel()
	base := time.UnixMilli(5)
	for _, c := range []struct {
		t    time.Time
		want int64
	}{{base, 5}, {base.Add(time.Nanosecond), 6}, {base.Add(700 * time.Microsecond), 6}, {base.Add(time.Millisecond), 6}} {
		if got := DueScore(c.t); got != c.want {
			t.Errorf("DueScore(%v) = %d, want %d", c.t.UnixNano(), got, c.want)
		}
	}
}
