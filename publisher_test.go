package redrive_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// Concurrent callers share round trips: every message arrives once, and each
// caller's messages keep their order, whatever the number of pipelines and
// however calls are split across them.
func TestPublisherConcurrentCallersShareRoundTrips(t *testing.T) {
	client := redistest.NewClient(t)
	for _, pipelines := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("pipelines=%d", pipelines), func(t *testing.T) {
			topic := redistest.RandomTopic("pub-concurrent")
			t.Cleanup(func() { client.Del(context.Background(), topic) })
			pub, err := redrive.NewPublisher(redrive.PublisherConfig{
				Client:          client,
				Pipelines:       pipelines,
				MaxPipelineSize: 7, // small, so batches span several round trips
			}, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			// Calls of 1 to 17 messages: some fit a round trip with others,
			// some span several (MaxPipelineSize 7).
			const callers, calls = 24, 20
			want := redistest.PublishConcurrently(t, pub, topic, callers, calls, func(c, i int) int { return 1 + (c+i)%17 })
			redistest.CloseTwice(t, pub, redrive.ErrPublisherClosed)

			entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != want {
				t.Fatalf("%d entries, want %d", len(entries), want)
			}
			next := make([]int, callers)
			for _, e := range entries {
				var c, n int
				if _, err := fmt.Sscanf(e.Values["payload"].(string), "%d:%d", &c, &n); err != nil {
					t.Fatal(err)
				}
				if n != next[c] {
					t.Fatalf("caller %d: message %d arrived where %d was due", c, n, next[c])
				}
				next[c]++
			}
			if err := client.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("client unusable after Close: %v", err)
			}
		})
	}
}

// Every entry's fields reach Redis in one order, sorted by name, whether the
// message went alone or in a pipeline, so Redis stores the field names once
// per stream node instead of once per entry.
func TestPublisherWritesFieldsInOneOrder(t *testing.T) {
	client := redistest.NewClient(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("pub-field-order")
	t.Cleanup(func() { client.Del(context.Background(), topic) })
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	var batch []*message.Message
	for i := range 30 {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))
		msg.Metadata.Set("n", fmt.Sprint(i))
		if i < 10 {
			if err := pub.Publish(topic, msg); err != nil { // alone: a plain XADD
				t.Fatal(err)
			}
			continue
		}
		batch = append(batch, msg)
	}
	if err := pub.Publish(topic, batch...); err != nil { // a pipeline
		t.Fatal(err)
	}

	// XRANGE's raw reply keeps the order the fields were written in; the
	// go-redis XMessage map would not.
	reply, err := client.Do(ctx, "XRANGE", topic, "-", "+").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != 30 {
		t.Fatalf("%d entries, want 30", len(reply))
	}
	want := []string{redrive.UUIDHeaderKey, "metadata", "payload"}
	for _, e := range reply {
		entry := e.([]interface{})
		pairs := entry[1].([]interface{})
		var names []string
		for i := 0; i < len(pairs); i += 2 {
			names = append(names, pairs[i].(string))
		}
		if !slices.Equal(names, want) {
			t.Fatalf("entry %v has fields %v, want %v", entry[0], names, want)
		}
	}
}
