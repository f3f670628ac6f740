package tests

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// oomMaxMemory is the maxmemory of the full-Redis tests' servers.
const oomMaxMemory = 24 << 20

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

// fullRedis starts a redis-server with maxmemory and noeviction, creates
// config's consumer groups on topic, and publishes 1 KiB messages until
// Redis refuses them. It returns the client, the UUIDs stored and the
// used_memory then.
func fullRedis(t *testing.T, topic string, config redrive.SubscriberConfig) (*redis.Client, []string, int64) {
	t.Helper()
	srv := redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: []string{
		"--maxmemory", strconv.Itoa(oomMaxMemory), "--maxmemory-policy", "noeviction",
	}})
	client := srv.Client(t)
	ctx := context.Background()
	config.Client = client
	// The group exists before the flood, as it does for a deployed consumer.
	if err := newSubscriber(t, config, nil).SubscribeInitialize(topic); err != nil {
		t.Fatalf("SubscribeInitialize: %v", err)
	}
	pub := newPublisher(t, client)
	payload := strings.Repeat("x", 1024)
	for {
		if err := pub.Publish(topic, newMessages(payload, 200)...); err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatalf("filling Redis: %v", err)
			}
			break
		}
	}
	entries, err := client.XRange(ctx, topic, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	stored := make([]string, len(entries))
	for i, e := range entries {
		stored[i], _ = e.Values[redrive.UUIDHeaderKey].(string)
	}
	full := usedMemory(t, client)
	t.Logf("Redis full: %d entries, used_memory %d of maxmemory %d", len(stored), full, oomMaxMemory)
	// The premise: at OOM, XGROUP CREATE fails even for an existing group.
	if err := client.XGroupCreateMkStream(ctx, topic, config.ConsumerGroup, "0").Err(); err == nil || !strings.HasPrefix(err.Error(), "OOM") {
		t.Fatalf("XGROUP CREATE of an existing group at OOM = %v, want an OOM error", err)
	}
	return client, stored, full
}

// drained waits for the stream to be trimmed empty and checks that memory
// came back and Redis takes writes again.
func drained(t *testing.T, client redis.UniversalClient, topic string, full int64) {
	t.Helper()
	ctx := context.Background()
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, err := client.XLen(ctx, topic).Result()
		return err == nil && n == 0
	}, "stream trimmed to 0 entries")
	after := usedMemory(t, client)
	t.Logf("after draining: used_memory %d (was %d)", after, full)
	if after > full/2 {
		t.Fatalf("used_memory %d after draining, want well under the %d it was full", after, full)
	}
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]interface{}{"payload": "after"}}).Err(); err != nil {
		t.Fatalf("XADD after draining: %v", err)
	}
}

// A Redis full at maxmemory with noeviction can be drained: a consumer that
// (re)starts while it is full subscribes although XGROUP CREATE is refused,
// consumes the backlog, and its trimmer gives the memory back. A group that
// does not exist yet is refused clearly.
func TestTrimDrainsFullRedis(t *testing.T) {
	t.Parallel()
	topic := redistest.RandomTopic("trim-oom-")
	config := redrive.SubscriberConfig{ConsumerGroup: "workers", RetainAcked: time.Millisecond, TrimInterval: 50 * time.Millisecond}
	client, stored, full := fullRedis(t, topic, config)
	config.Client = client

	other := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "newcomers"}, nil)
	if _, err := other.Subscribe(context.Background(), topic); !errors.Is(err, redrive.ErrGroupMissingAtOOM) {
		t.Fatalf("Subscribe of a new group at OOM = %v, want ErrGroupMissingAtOOM", err)
	}

	got := collect(subscribe(t, newSubscriber(t, config, nil), topic))
	got.waitUnique(t, len(stored))
	sameSet(t, "drained messages", got.ids(), stored)
	drained(t, client, topic, full)
}

// Retries at OOM: a retry is scheduled by a script that acks first, so
// Redis lets its ZADD through (a refused one would be nacked and come back),
// but the delayed mover cannot add due retries to the retry stream until
// trimming has freed memory. Every message is handled, none lost or
// poisoned.
func TestTrimDrainsFullRedisWithRetries(t *testing.T) {
	t.Parallel()
	topic := redistest.RandomTopic("trim-oom-retry-")
	config := redrive.SubscriberConfig{ConsumerGroup: "workers", RetainAcked: time.Millisecond, TrimInterval: 50 * time.Millisecond}
	client, stored, full := fullRedis(t, topic, config)
	config.Client = client
	failFirst := map[string]bool{}
	for i, id := range stored {
		if i%10 == 0 {
			failFirst[id] = true
		}
	}

	var mu sync.Mutex
	handled := map[string]bool{}
	retried := 0
	handler := func(msg *message.Message) error {
		st, err := middleware.ReadRetryState(msg.Metadata)
		if err != nil {
			return middleware.Permanent(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if failFirst[msg.UUID] && st.Attempts == 0 {
			return errors.New("first attempt fails")
		}
		if st.Attempts > 0 {
			retried++
		}
		handled[msg.UUID] = true
		return nil
	}
	pub := newPublisher(t, client)
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher: pub, PoisonTopic: topic + ".poison", MaxRetries: 3,
		InitialInterval: 20 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Multiplier: 1,
	}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retry.Middleware)
	router.AddConsumerHandler("oom", topic, newSubscriber(t, config, nil), handler)
	runDone := make(chan error, 1)
	go func() { runDone <- router.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = router.Close()
		if err := <-runDone; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	select {
	case <-router.Running():
	case err := <-runDone:
		t.Fatalf("router did not start at OOM: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("router not running")
	}

	redistest.WaitFor(t, 2*waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(stored)
	}, "every message handled")
	mu.Lock()
	t.Logf("%d messages handled, %d of them after a retry", len(handled), retried)
	if retried != len(failFirst) {
		t.Errorf("%d messages handled after a retry, want the %d that failed first", retried, len(failFirst))
	}
	mu.Unlock()
	if n := client.XLen(context.Background(), topic+".poison").Val(); n != 0 {
		t.Errorf("%d messages poisoned, want none", n)
	}
	drained(t, client, topic, full)
}
