package admin

import (
	"context"
	"testing"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/hashslot"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/internal/scripts"
)

// On a Redis Cluster, a requeue between two slots is done in two steps made
// safe by a marker: a crash between them leaves the message in both places,
// and running the requeue again completes it without a second copy. Within
// one slot it is one script, as on a single server.
func TestRequeueOnCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := redistest.StartCluster(t, redistest.ClusterOptions{ReplicasPerMaster: -1})
	client := cluster.Client(t)
	a := newTestAdmin(t, client, 2)

	topic := redistest.RandomTopic("admin-cluster-")
	poisonTopic := redistest.RandomTopic("admin-cluster-poison-")
	for hashslot.Of(poisonTopic) == hashslot.Of(topic) {
		poisonTopic = redistest.RandomTopic("admin-cluster-poison-")
	}
	keys := redrive.KeysFor(topic)
	retryStream := keys.GroupRetry("g")
	createGroup(t, client, topic, "g")

	var ids []string
	for range 5 {
		id, _ := addPoisoned(t, client, poisonTopic, poisoned{topic: topic, handler: "g", reason: "max retries exceeded", attempts: 2, lastError: "x"})
		ids = append(ids, id)
	}

	// A requeue that died after its first step for ids[0].
	m, err := a.ShowPoisoned(ctx, poisonTopic, ids[0], ShowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out Outcome
	groups := groupCache{admin: a, groups: map[string]map[string]bool{}}
	item, err := a.planRequeue(ctx, poisonTopic, &m, RequeueOptions{}, &groups, m.PoisonedAt, &out)
	if err != nil {
		t.Fatal(err)
	}
	if item.marker == "" || item.target != retryStream || hashslot.Of(item.marker) != hashslot.Of(retryStream) {
		t.Fatalf("plan = %+v, want a marker in the slot of %s", item, retryStream)
	}
	first, err := scripts.RequeuePoisonedCrossSlot.Run(ctx, client, a.crossSlotArgs(item))
	if err != nil {
		t.Fatalf("first step: %v", err)
	}
	if xlen(t, client, retryStream) != 1 || xlen(t, client, poisonTopic) != 5 {
		t.Fatal("after the first step the message should be in both places")
	}

	res, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{All: true}, RequeueOptions{})
	if err != nil {
		t.Fatalf("requeue: %v", err)
	}
	if res.Requeued != 5 {
		t.Fatalf("requeue = %+v", res)
	}
	if res.Messages[0].NewID != first {
		t.Errorf("the interrupted message got entry %s, want the one its first step wrote (%v)", res.Messages[0].NewID, first[0])
	}
	if n := xlen(t, client, retryStream); n != 5 {
		t.Errorf("retry stream has %d entries, want 5: exactly one copy each", n)
	}
	if n := xlen(t, client, poisonTopic); n != 0 {
		t.Errorf("poison topic keeps %d", n)
	}
	// Running it again for the same ID changes nothing.
	again, err := a.RequeuePoisoned(ctx, poisonTopic, Selector{IDs: []string{ids[0]}}, RequeueOptions{})
	if err != nil || again.Requeued != 0 || len(again.NotFound) != 1 || xlen(t, client, retryStream) != 5 {
		t.Errorf("second requeue = %+v, %v", again, err)
	}

	// The topic's own poison stream is in the topic's slot: one script.
	for range 3 {
		addPoisoned(t, client, keys.Poison, poisoned{topic: topic, group: "g", reason: redrive.ReasonExceededMaxDeliveries})
	}
	res, err = a.RequeuePoisoned(ctx, keys.Poison, Selector{All: true}, RequeueOptions{})
	if err != nil || res.Requeued != 3 {
		t.Fatalf("same-slot requeue = %+v, %v", res, err)
	}
	if n := xlen(t, client, retryStream); n != 8 {
		t.Errorf("retry stream has %d, want 8", n)
	}

	info, err := a.TopicInfo(ctx, topic, TopicInfoOptions{PoisonTopics: []string{poisonTopic}})
	if err != nil {
		t.Fatalf("TopicInfo on a cluster: %v", err)
	}
	if len(info.Groups) != 1 || info.Groups[0].Retry.Length != 8 || info.Poisoned != 0 {
		t.Errorf("info = %+v", info)
	}
}
