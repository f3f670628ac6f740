package scripts

import (
	"strings"
	"testing"
	"time"
)

func TestAcquireDedupKey(t *testing.T) {
	ctx, client, k := setup(t)
	key := k.key("dedup")
	first := AcquireDedupKeyArgs{Key: key, CopyID: "c1", Attempts: 1, Lease: time.Hour}

	got, err := AcquireDedupKey.Run(ctx, client, first)
	if err != nil || got.State != DedupAcquired || got.Token == "" {
		t.Fatalf("AcquireDedupKey on a free key = %+v, %v; want acquired with a token", got, err)
	}
	held := client.Get(ctx, key).Val()
	if held != got.Token {
		t.Errorf("key holds %q, want the token %q", held, got.Token)
	}
	if ttl := client.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("key expires in %v, want the lease of an hour", ttl)
	}

	// A copy with as many failed attempts, or fewer, waits for the holder.
	for _, attempts := range []int{0, 1} {
		other := AcquireDedupKeyArgs{Key: key, CopyID: "c2", Attempts: attempts, Lease: time.Hour}
		if got, err := AcquireDedupKey.Run(ctx, client, other); err != nil || got.State != DedupBusy || got.Token != "" {
			t.Errorf("copy with %d attempts while one with 1 holds the key: %+v, %v; want busy", attempts, got, err)
		}
	}
	if now := client.Get(ctx, key).Val(); now != held {
		t.Errorf("a busy copy changed the key to %q", now)
	}

	// A later retry (more failed attempts) takes it over, with its own token.
	retry := AcquireDedupKeyArgs{Key: key, CopyID: "c3", Attempts: 2, Lease: 2 * time.Hour}
	got2, err := AcquireDedupKey.Run(ctx, client, retry)
	if err != nil || got2.State != DedupAcquired || got2.Token == got.Token {
		t.Fatalf("later retry = %+v, %v; want acquired with a new token", got2, err)
	}
	if now := client.Get(ctx, key).Val(); now != got2.Token {
		t.Errorf("key holds %q after the takeover, want %q", now, got2.Token)
	}
	if ttl := client.PTTL(ctx, key).Val(); ttl <= time.Hour {
		t.Errorf("key expires in %v, want the new copy's lease of two hours", ttl)
	}
	// Settled with the same tokens the script hands out: the holder's token
	// still works, the replaced one no longer does.
	if ok, err := SettleDedupKey.Run(ctx, client, SettleDedupKeyArgs{Key: key, Token: got.Token, Outcome: DedupFailed()}); err != nil || ok {
		t.Errorf("settling with the replaced token: %v, %v; want not settled", ok, err)
	}
	if ok, err := SettleDedupKey.Run(ctx, client, SettleDedupKeyArgs{Key: key, Token: got2.Token, Outcome: DedupSucceeded(time.Minute)}); err != nil || !ok {
		t.Fatalf("settling with the holder's token: %v, %v; want settled", ok, err)
	}

	// Handled: every copy is dropped, however many attempts it has.
	for _, attempts := range []int{0, 5} {
		late := AcquireDedupKeyArgs{Key: key, CopyID: "c4", Attempts: attempts, Lease: time.Hour}
		if got, err := AcquireDedupKey.Run(ctx, client, late); err != nil || got.State != DedupDone {
			t.Errorf("copy with %d attempts after success: %+v, %v; want done", attempts, got, err)
		}
	}
	if now := client.Get(ctx, key).Val(); now != DedupDoneMarker {
		t.Errorf("key holds %q, want the done marker %q", now, DedupDoneMarker)
	}
}

// A key holding something that is neither a token nor the done marker (left
// by an older or foreign writer) does not block the message forever.
func TestAcquireDedupKeyTakesOverAForeignValue(t *testing.T) {
	ctx, client, k := setup(t)
	key := k.key("dedup")
	if err := client.Set(ctx, key, "something else", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := AcquireDedupKey.Run(ctx, client, AcquireDedupKeyArgs{Key: key, CopyID: "c", Lease: time.Minute})
	if err != nil || got.State != DedupAcquired {
		t.Errorf("over a foreign value: %+v, %v; want acquired", got, err)
	}
}

func TestAcquireDedupKeyBadArgs(t *testing.T) {
	t.Parallel()
	for name, args := range map[string]AcquireDedupKeyArgs{
		"copy ID":     {Key: "k", Lease: time.Second},
		"attempts":    {Key: "k", CopyID: "c", Attempts: -1, Lease: time.Second},
		"millisecond": {Key: "k", CopyID: "c", Lease: time.Microsecond},
	} {
		_, err := AcquireDedupKey.Run(t.Context(), nil, args)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%+v: err = %v, want one naming the %s", args, err, name)
		}
	}
}

func TestDedupStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[DedupState]string{DedupAcquired: "acquired", DedupDone: "done", DedupBusy: "busy", 0: "DedupState(0)"} {
		if got := s.String(); got != want {
			t.Errorf("DedupState(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
