package redrive

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"
)

func TestConsumerJanitor(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	ctx := context.Background()
	st.add(t, st.keys.Stream, 1)
	pending := st.read(t, st.keys.Stream, "idle-with-pending", 1)
	for _, name := range []string{"idle-empty", "live"} {
		if err := st.client.XGroupCreateConsumer(ctx, st.keys.Stream, testGroup, name).Err(); err != nil {
			t.Fatalf("XGROUP CREATECONSUMER %s: %v", name, err)
		}
	}

	janitor := newConsumerJanitor(consumerJanitorConfig{
		Client:   st.client,
		Streams:  st.streams(),
		Group:    testGroup,
		Consumer: "live",
		// Every consumer above is idle that long by the first pass.
		ConsumerTimeout: time.Millisecond,
		Interval:        50 * time.Millisecond,
		Logger:          watermill.NopLogger{},
	})
	janitor.TestSignals.Init(t)
	if err := janitor.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(janitor.Stop)

	if name := janitor.TestSignals.Deleted.Require(t, signalTimeout, "consumer removed"); name != "idle-empty" {
		t.Fatalf("removed consumer %q, want idle-empty", name)
	}
	// The pass that removed it ends, then a whole pass more sees the others.
	janitor.TestSignals.Pass.Require(t, signalTimeout, "end of the removing pass")
	janitor.TestSignals.Pass.Require(t, signalTimeout, "another pass")
	janitor.Stop()
	select {
	case name := <-janitor.TestSignals.Deleted.C():
		t.Fatalf("also removed %q", name)
	default:
	}

	list, err := st.client.XInfoConsumers(ctx, st.keys.Stream, testGroup).Result()
	if err != nil {
		t.Fatalf("XINFO CONSUMERS: %v", err)
	}
	consumers := map[string]redis.XInfoConsumer{}
	for _, c := range list {
		consumers[c.Name] = c
	}
	if c, ok := consumers["idle-with-pending"]; !ok || c.Pending != 1 {
		t.Errorf("consumers %v: idle-with-pending and its pending entry must stay", consumers)
	}
	if _, ok := consumers["live"]; !ok {
		t.Errorf("consumers %v: the janitor removed its own consumer", consumers)
	}
	if _, ok := consumers["idle-empty"]; ok {
		t.Errorf("consumers %v: idle-empty still there", consumers)
	}
	if p := st.pending(t, st.keys.Stream); len(p) != 1 || p[0].ID != pending[0].ID {
		t.Errorf("pending %+v, want %s", p, pending[0].ID)
	}
}
