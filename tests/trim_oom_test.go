package tests

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/redistest"
)

// usedMemory is INFO memory's used_memory.
func usedMemory(t *testing.T, client redis.UniversalClient) int64 {
	t.Helper()
	info, err := client.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	n, err := strconv.ParseInt(redisinfo.Field(info, "used_memory"), 10, 64)
	if err != nil {
		t.Fatalf("used_memory: %v", err)
	}
	return n
}

// A Redis full at maxmemory with noeviction can be drained: a consumer that
// (re)starts while it is full subscribes although XGROUP CREATE is refused,
// consumes the backlog, and its trimmer gives the memory back.
func TestTrimDrainsFullRedis(t *testing.T) {
	t.Parallel()
	const maxMemory = 24 << 20
	srv := redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: []string{
		"--maxmemory", strconv.Itoa(maxMemory), "--maxmemory-policy", "noeviction",
	}})
	client := srv.Client(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("trim-oom-")
	config := redrive.SubscriberConfig{
		Client:        client,
		ConsumerGroup: "workers",
		RetainAcked:   time.Millisecond,
		TrimInterval:  50 * time.Millisecond,
	}
	// The group exists before the flood, as it does for a deployed consumer.
	if err := newSubscriber(t, config, nil).SubscribeInitialize(topic); err != nil {
		t.Fatalf("SubscribeInitialize: %v", err)
	}

	// Fill Redis through the publisher until it refuses writes.
	pub := newPublisher(t, client)
	payload := strings.Repeat("x", 1024)
	for {
		msgs := newMessages(payload, 200)
		err := pub.Publish(topic, msgs...)
		if err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatalf("filling Redis: %v", err)
			}
			break
		}
	}
	length, err := client.XLen(ctx, topic).Result()
	if err != nil {
		t.Fatal(err)
	}
	filled := int(length)
	full := usedMemory(t, client)
	t.Logf("Redis full: %d entries, used_memory %d of maxmemory %d", filled, full, maxMemory)
	// The premise: at OOM, XGROUP CREATE fails even for an existing group.
	if err := client.XGroupCreateMkStream(ctx, topic, "workers", "0").Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("XGROUP CREATE of an existing group at OOM = %v, want an OOM error", err)
	}

	// A group that does not exist yet cannot be created: said clearly.
	other := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "newcomers"}, nil)
	if _, err := other.Subscribe(ctx, topic); !errors.Is(err, redrive.ErrGroupMissingAtOOM) {
		t.Fatalf("Subscribe of a new group at OOM = %v, want ErrGroupMissingAtOOM", err)
	}

	// The existing group's consumer (re)starts, drains, and memory comes back.
	got := collect(subscribe(t, newSubscriber(t, config, nil), topic))
	redistest.WaitFor(t, 2*waitTimeout, func() bool { return got.unique() >= filled },
		"consumer to drain the %d entries (got %d)", filled, got.unique())
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, err := client.XLen(ctx, topic).Result()
		return err == nil && n == 0
	}, "stream trimmed to 0 entries")
	drained := usedMemory(t, client)
	t.Logf("after draining: used_memory %d (was %d)", drained, full)
	if drained > full/2 {
		t.Fatalf("used_memory %d after draining, want well under the %d it was full", drained, full)
	}
	// Redis takes writes again.
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]interface{}{"payload": "after"}}).Err(); err != nil {
		t.Fatalf("XADD after draining: %v", err)
	}
}
