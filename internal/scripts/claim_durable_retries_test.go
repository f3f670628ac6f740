package scripts

import (
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClaimDurableRetries(t *testing.T) {
	ctx, client, k := setup(t)
	set := k.key("retries")
	now := time.UnixMilli(1_700_000_000_000)
	err := client.ZAdd(ctx, set,
		redis.Z{Score: float64(now.Add(-2 * time.Second).UnixMilli()), Member: "a"},
		redis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: "b"},
		redis.Z{Score: float64(now.UnixMilli()), Member: "c"},
		redis.Z{Score: float64(now.Add(time.Millisecond).UnixMilli()), Member: "later"},
	).Err()
	if err != nil {
		t.Fatal(err)
	}
	args := ClaimDurableRetriesArgs{Key: set, Now: now, Lease: 30 * time.Second, Limit: 2}

	claimed, err := ClaimDurableRetries.Run(ctx, client, args)
	if err != nil || !reflect.DeepEqual(claimed, []string{"a", "b"}) {
		t.Fatalf("ClaimDurableRetries = %v, %v; want the two earliest due (Limit 2)", claimed, err)
	}
	leaseEnd := float64(now.Add(30 * time.Second).UnixMilli())
	for _, m := range claimed {
		if score := client.ZScore(ctx, set, m).Val(); score != leaseEnd {
			t.Errorf("%s scored %v, want the lease end %v: claimed members stay in the set", m, score, leaseEnd)
		}
	}

	// The next call finds the one left due at Now (inclusive), not the
	// claimed ones, nor the one due later.
	args.Limit = 10
	if claimed, err = ClaimDurableRetries.Run(ctx, client, args); err != nil || !reflect.DeepEqual(claimed, []string{"c"}) {
		t.Errorf("second claim = %v, %v; want only c", claimed, err)
	}
	if claimed, err = ClaimDurableRetries.Run(ctx, client, args); err != nil || claimed == nil || len(claimed) != 0 {
		t.Errorf("nothing due: %#v, %v; want an empty list", claimed, err)
	}

	// When the lease ends, an unpublished claim is due again.
	args.Now = now.Add(30 * time.Second)
	if claimed, err = ClaimDurableRetries.Run(ctx, client, args); err != nil || !reflect.DeepEqual(claimed, []string{"later", "a", "b", "c"}) {
		t.Errorf("after the lease: %v, %v; want the expired claims and the one now due", claimed, err)
	}
}

func TestClaimDurableRetriesBadArgs(t *testing.T) {
	t.Parallel()
	for _, args := range []ClaimDurableRetriesArgs{
		{Key: "k", Lease: time.Second},
		{Key: "k", Lease: -time.Second, Limit: 1},
	} {
		if _, err := ClaimDurableRetries.Run(t.Context(), nil, args); err == nil {
			t.Errorf("%+v: no error", args)
		}
	}
}
