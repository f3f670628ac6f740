package redrive_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// A subscriber in a consumer group trims its topic by itself (RetainAcked,
// TrimInterval). For a stream whose consumers are not redrive subscribers,
// run a Trimmer, or call TrimStream once.
func ExampleTrimStream() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	topic := "example-trim-" + watermill.NewShortUUID()
	defer exampleCleanup(client, topic, "")

	// Two groups: "billing" read and acked all four entries, "audit" read
	// two and acked one.
	client.XGroupCreateMkStream(ctx, topic, "billing", "0")
	client.XGroupCreateMkStream(ctx, topic, "audit", "0")
	for i := 1; i <= 4; i++ {
		client.XAdd(ctx, &redis.XAddArgs{Stream: topic, ID: fmt.Sprintf("1000-%d", i), Values: map[string]interface{}{"payload": i}})
	}
	for _, m := range client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "c", Streams: []string{topic, ">"}}).Val()[0].Messages {
		client.XAck(ctx, topic, "billing", m.ID)
	}
	audit := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "c", Streams: []string{topic, ">"}, Count: 2}).Val()[0].Messages
	client.XAck(ctx, topic, "audit", audit[0].ID)

	// Only the entry both groups are done with goes; audit's pending and
	// unread entries stay, and audit is named as holding them back.
	r, err := redrive.TrimStream(ctx, client, topic, time.Millisecond, false)
	if err != nil {
		panic(err)
	}
	fmt.Println("trimmed:", r.Trimmed, "left:", r.Length)
	for _, g := range r.HoldingBack() {
		fmt.Printf("%s holds back %d entries (%d pending, %d unread)\n", g.Group, g.Retained, g.Pending, g.Unread)
	}
	// Output:
	// trimmed: 1 left: 3
	// audit holds back 3 entries (1 pending, 2 unread)
}
