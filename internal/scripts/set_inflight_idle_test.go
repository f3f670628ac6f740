package scripts

import (
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestSetInflightIdle(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("s")
	ids := streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"}, map[string]interface{}{"n": "2"})
	readAs(t, client, stream, "c1")
	if err := client.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: "g", Consumer: "c2", Messages: ids[1:]}).Err(); err != nil {
		t.Fatal(err)
	}
	idleOf := func(id string) (string, time.Duration) {
		t.Helper()
		p, err := client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "g", Start: id, End: id, Count: 1}).Result()
		if err != nil || len(p) != 1 {
			t.Fatalf("pending %s: %v, %v", id, p, err)
		}
		return p[0].Consumer, p[0].Idle
	}

	lost, err := SetInflightIdle.Run(ctx, client, SetInflightIdleArgs{Stream: stream, Group: "g", Consumer: "c1", Idle: time.Hour, IDs: ids})
	if err != nil || !reflect.DeepEqual(lost, []string{ids[1]}) {
		t.Fatalf("SetInflightIdle = %v, %v; want only %s lost", lost, err, ids[1])
	}
	if owner, idle := idleOf(ids[0]); owner != "c1" || idle < time.Hour {
		t.Errorf("%s: owner %s idle %v; want c1 and at least an hour", ids[0], owner, idle)
	}
	if owner, idle := idleOf(ids[1]); owner != "c2" || idle >= time.Hour {
		t.Errorf("%s: owner %s idle %v; want it left to c2 untouched", ids[1], owner, idle)
	}

	lost, err = SetInflightIdle.Run(ctx, client, SetInflightIdleArgs{Stream: stream, Group: "g", Consumer: "c1", IDs: ids[:1]})
	if err != nil || len(lost) != 0 {
		t.Fatalf("idle 0: %v, %v; want none lost", lost, err)
	}
	if _, idle := idleOf(ids[0]); idle >= time.Hour {
		t.Errorf("%s idle %v after setting 0", ids[0], idle)
	}

	if _, err := SetInflightIdle.Run(ctx, nil, SetInflightIdleArgs{Stream: stream, Group: "g", Consumer: "c1"}); err == nil {
		t.Error("no IDs: no error")
	}
}
