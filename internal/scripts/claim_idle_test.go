package scripts

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClaimIdle(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("s")
	ids := streamWithGroup(t, client, stream,
		map[string]interface{}{"n": "fresh"}, map[string]interface{}{"n": "crashy"}, map[string]interface{}{"n": "gone"})
	readAs(t, client, stream, "dead")
	// A second delivery of the crashy entry, and the gone entry deleted while
	// pending.
	if err := client.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: "g", Consumer: "dead", Messages: ids[1:2]}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.XDel(ctx, stream, ids[2]).Err(); err != nil {
		t.Fatal(err)
	}

	// Nothing has been idle for an hour: MinIdle reaches the script.
	res, err := ClaimIdle.Run(ctx, client, ClaimIdleArgs{Stream: stream, Group: "g", Consumer: "alive", MinIdle: time.Hour, Count: 10, MaxDeliveries: 2})
	if err != nil || len(res.Claimed)+len(res.Exceeded) != 0 || res.Removed != 0 {
		t.Fatalf("MinIdle 1h: %+v, %v; want nothing", res, err)
	}

	res, err = ClaimIdle.Run(ctx, client, ClaimIdleArgs{Stream: stream, Group: "g", Consumer: "alive", Count: 10, MaxDeliveries: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Claimed) != 1 || res.Claimed[0].ID != ids[0] || res.Claimed[0].Values["n"] != "fresh" {
		t.Errorf("claimed %+v, want %s with its fields", res.Claimed, ids[0])
	}
	if len(res.Exceeded) != 1 || res.Exceeded[0].ID != ids[1] || res.Exceeded[0].Deliveries != 2 || res.Exceeded[0].Values["n"] != "crashy" {
		t.Errorf("exceeded %+v, want %s delivered twice with its fields", res.Exceeded, ids[1])
	}
	if res.Removed != 1 {
		t.Errorf("removed %d, want 1 (the deleted entry)", res.Removed)
	}

	// Count 1 looks at the first pending entry only.
	res, err = ClaimIdle.Run(ctx, client, ClaimIdleArgs{Stream: stream, Group: "g", Consumer: "other", Count: 1})
	if err != nil || len(res.Claimed) != 1 || res.Claimed[0].ID != ids[0] || len(res.Exceeded) != 0 {
		t.Fatalf("Count 1: %+v, %v; want only %s claimed", res, err, ids[0])
	}

	// MaxDeliveries 0 is no limit: the crashy entry is claimed.
	res, err = ClaimIdle.Run(ctx, client, ClaimIdleArgs{Stream: stream, Group: "g", Consumer: "alive", Count: 10})
	if err != nil || len(res.Exceeded) != 0 || len(res.Claimed) != 2 {
		t.Errorf("no limit: %+v, %v; want both entries claimed", res, err)
	}

	_, err = ClaimIdle.Run(ctx, client, ClaimIdleArgs{Stream: stream, Group: "g", Consumer: "alive"})
	if err == nil || !strings.Contains(err.Error(), "script claim_idle: bad arguments") {
		t.Errorf("count 0: err = %v, want one naming the script", err)
	}
}

func TestParseClaimIdleRejectsOtherShapes(t *testing.T) {
	t.Parallel()
	for _, reply := range []interface{}{
		"x",
		[]interface{}{[]interface{}{}, []interface{}{}},
		[]interface{}{[]interface{}{"1-0"}, []interface{}{}, int64(0)},
		[]interface{}{[]interface{}{}, []interface{}{[]interface{}{"1-0", "two", nil}}, int64(0)},
		[]interface{}{[]interface{}{}, []interface{}{}, "0"},
	} {
		if r, err := parseClaimIdle(reply); err == nil {
			t.Errorf("parseClaimIdle(%v) = %+v, want an error", reply, r)
		}
	}
}
