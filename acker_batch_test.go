package redrive

import (
	"context"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
)

// TestAckerSendsEveryAck: acks added from several goroutines, many more than
// one batch holds (so adders wait for room), all reach Redis by the time stop
// returns.
func TestAckerSendsEveryAck(t *testing.T) {
	client := redistest.NewClient(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("acker")
	t.Cleanup(func() { client.Del(context.Background(), topic) })
	const n = 300
	for range n {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: []any{"payload", "x"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.XGroupCreate(ctx, topic, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	read, err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{topic, ">"}, Count: n}).Result()
	if err != nil || len(read[0].Messages) != n {
		t.Fatalf("read %v entries: %v", len(read), err)
	}
	sub, err := NewSubscriber(SubscriberConfig{Client: client, ConsumerGroup: "g", AckBatchSize: 7}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	s := newSubscription(ctx, sub, topic)
	a := newAcker(s)
	a.start()
	var wg sync.WaitGroup
	for part := range 3 {
		wg.Go(func() {
			for i := part; i < n; i += 3 {
				a.add(topic, read[0].Messages[i].ID)
			}
		})
	}
	wg.Wait()
	a.stop()
	pending, err := client.XPending(ctx, topic, "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 0 {
		t.Fatalf("%d entries still pending after stop", pending.Count)
	}
}
