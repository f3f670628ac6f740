package scripts

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSettleDedupKey(t *testing.T) {
	ctx, client, k := setup(t)
	acquire := func(key string) string {
		t.Helper()
		got, err := AcquireDedupKey.Run(ctx, client, AcquireDedupKeyArgs{Key: key, CopyID: "c", Lease: time.Minute})
		if err != nil || got.State != DedupAcquired {
			t.Fatalf("acquire %s: %+v, %v", key, got, err)
		}
		return got.Token
	}
	settle := func(key, token string, outcome DedupOutcome) bool {
		t.Helper()
		ok, err := SettleDedupKey.Run(ctx, client, SettleDedupKeyArgs{Key: key, Token: token, Outcome: outcome})
		if err != nil {
			t.Fatalf("settle %s %s: %v", key, outcome, err)
		}
		return ok
	}

	refreshed := k.key("refreshed")
	token := acquire(refreshed)
	if !settle(refreshed, token, DedupRefresh(time.Hour)) {
		t.Error("refresh by the holder: not settled")
	}
	if v := client.Get(ctx, refreshed).Val(); v != token {
		t.Errorf("refresh changed the key to %q, want the token %q kept", v, token)
	}
	if ttl := client.PTTL(ctx, refreshed).Val(); ttl <= 59*time.Minute {
		t.Errorf("key expires in %v after a refresh to an hour", ttl)
	}

	succeeded := k.key("succeeded")
	token = acquire(succeeded)
	if !settle(succeeded, token, DedupSucceeded(2*time.Hour)) {
		t.Error("success by the holder: not settled")
	}
	if v := client.Get(ctx, succeeded).Val(); v != DedupDoneMarker {
		t.Errorf("key holds %q after success, want %q", v, DedupDoneMarker)
	}
	if ttl := client.PTTL(ctx, succeeded).Val(); ttl <= time.Hour {
		t.Errorf("key expires in %v after success, want the window of two hours", ttl)
	}

	failed := k.key("failed")
	token = acquire(failed)
	if !settle(failed, token, DedupFailed()) {
		t.Error("failure by the holder: not settled")
	}
	if n := client.Exists(ctx, failed).Val(); n != 0 {
		t.Error("key still there after failure, want it deleted so the retry runs")
	}

	// Not the holder: nothing changes, whatever the outcome.
	other := k.key("other")
	token = acquire(other)
	for _, outcome := range []DedupOutcome{DedupSucceeded(time.Hour), DedupFailed(), DedupRefresh(time.Hour)} {
		if settle(other, "p:0:someone-else", outcome) {
			t.Errorf("%s by another copy: settled", outcome)
		}
	}
	if v := client.Get(ctx, other).Val(); v != token {
		t.Errorf("key holds %q, want the holder's token %q untouched", v, token)
	}
	if ttl := client.PTTL(ctx, other).Val(); ttl > time.Minute {
		t.Errorf("key expires in %v, want the holder's lease of a minute untouched", ttl)
	}
}

// Each outcome sends the time to live only where the script reads it.
func TestSettleDedupKeyArgv(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		outcome DedupOutcome
		want    []interface{}
	}{
		{DedupSucceeded(2 * time.Second), []interface{}{"tok", "done", int64(2000), DedupDoneMarker}},
		{DedupFailed(), []interface{}{"tok", "failed"}},
		{DedupRefresh(1500 * time.Millisecond), []interface{}{"tok", "refresh", int64(1500)}},
	} {
		keys, argv, err := SettleDedupKey.build(SettleDedupKeyArgs{Key: "k", Token: "tok", Outcome: c.outcome})
		if err != nil || !reflect.DeepEqual(keys, []string{"k"}) || !reflect.DeepEqual(argv, c.want) {
			t.Errorf("%s: KEYS %v ARGV %v, %v; want [k] %v", c.outcome, keys, argv, err, c.want)
		}
	}
}

func TestSettleDedupKeyBadArgs(t *testing.T) {
	t.Parallel()
	for name, args := range map[string]SettleDedupKeyArgs{
		"token":       {Key: "k", Outcome: DedupFailed()},
		"no outcome":  {Key: "k", Token: "t"},
		"millisecond": {Key: "k", Token: "t", Outcome: DedupSucceeded(0)},
	} {
		_, err := SettleDedupKey.Run(t.Context(), nil, args)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%+v: err = %v, want one naming the %s", args, err, name)
		}
	}
}
