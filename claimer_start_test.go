package redrive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// TestClaimedAtStartDeliveredOnce: a subscriber that starts while a dead
// consumer holds idle entries claims them in its first pass, and its reader
// reads its own pending entries at the same time. An entry claimed before
// that read would be in it, and was delivered twice (or, with MaxDeliveries
// 2, delivered and poisoned as a crash loop). Each entry must be delivered
// exactly once and nothing poisoned. The race needs a few tries to show, so
// the test starts several subscribers in turn.
func TestClaimedAtStartDeliveredOnce(t *testing.T) {
	t.Parallel()
	for try := range 8 {
		t.Run(fmt.Sprintf("try%d", try), func(t *testing.T) {
			t.Parallel()
			claimedAtStartDeliveredOnce(t)
		})
	}
}

func claimedAtStartDeliveredOnce(t *testing.T) {
	st := newServiceTopic(t)
	ctx := context.Background()
	abandoned := st.add(t, st.keys.Stream, 3)
	entries := st.read(t, st.keys.Stream, "dead", 3)
	st.setIdle(t, st.keys.Stream, "dead", time.Hour, 1, ids(entries)...)
	sentinel := st.add(t, st.keys.Stream, 1)[0]

	sub, err := NewSubscriber(SubscriberConfig{
		Client:        st.client,
		ConsumerGroup: testGroup,
		Consumer:      "alive",
		MaxIdleTime:   time.Minute,
		MaxDeliveries: 2,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, st.keys.Stream)
	if err != nil {
		t.Fatal(err)
	}

	deliveries := map[string]int{}
	want := map[string]bool{sentinel.UUID: true}
	for _, m := range abandoned {
		want[m.UUID] = true
	}
	timeout := time.After(signalTimeout)
	for seen := 0; seen < len(want); {
		select {
		case m := <-msgs:
			deliveries[m.UUID]++
			if deliveries[m.UUID] == 1 && want[m.UUID] {
				seen++
			}
			m.Ack()
		case <-timeout:
			t.Fatalf("got %v within %s, want each of %d messages", deliveries, signalTimeout, len(want))
		}
	}
	for uuid, n := range deliveries {
		if n != 1 || !want[uuid] {
			t.Errorf("message %s delivered %d times (wanted: %v), want once", uuid, n, want[uuid])
		}
	}
	if n := st.len(t, st.keys.Poison); n != 0 {
		t.Errorf("poison stream has %d entries, want 0", n)
	}
}
