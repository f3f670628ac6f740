package tests

import (
	"context"
	"testing"
	"time"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// On a 3+3 Redis Cluster, subscribers of two groups trim their topics (a
// plain name, one with a hash tag, one with a '}' and no tag) while a third
// group that never reads holds one topic's entries back.
func TestTrimCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; skipped with -short")
	}
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	client := cl.Client(t)
	ctx := context.Background()
	topics := []string{
		redistest.RandomTopic("trim-cluster-"),
		"{" + redistest.RandomTopic("tag-") + "}.orders",
		redistest.RandomTopic("odd}name-"),
	}
	held := topics[1]
	createGroupAt(t, client, held, "stopped", "0")

	const messages = 300
	pub := newPublisher(t, client)
	for _, topic := range topics {
		var collectors []*collector
		for _, group := range []string{"a", "b"} {
			sub := newSubscriber(t, redrive.SubscriberConfig{
				Client: client, ConsumerGroup: group, RetainAcked: time.Millisecond, TrimInterval: 20 * time.Millisecond,
			}, nil)
			collectors = append(collectors, collect(subscribe(t, sub, topic)))
		}
		msgs := newMessages(topic, messages)
		publish(t, pub, topic, msgs...)
		for i, c := range collectors {
			c.waitUnique(t, messages)
			sameSet(t, topic+" group "+[]string{"a", "b"}[i], c.ids(), uuids(msgs))
		}
	}
	for _, topic := range topics {
		if topic == held {
			continue
		}
		redistest.WaitFor(t, waitTimeout, func() bool {
			n, err := client.XLen(ctx, topic).Result()
			return err == nil && n == 0
		}, "%s trimmed to 0 entries on the cluster", topic)
	}
	r, err := redrive.TrimStream(ctx, client, held, time.Millisecond, false)
	if err != nil {
		t.Fatalf("TrimStream on the cluster: %v", err)
	}
	if r.Length != messages || r.Trimmed != 0 {
		t.Fatalf("%s with a group that never read: %d entries left, %d trimmed; want all %d kept", held, r.Length, r.Trimmed, messages)
	}
	if g := groupResult(t, r, "stopped"); !g.HoldsBack || g.Retained != messages {
		t.Fatalf("stopped group report %+v, want %d held back", g, messages)
	}
}
