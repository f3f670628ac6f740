package main

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive/internal/redistest"
)

// The yardstick must store what it was given, or the comparison means
// nothing: every message of concurrent calls of 1 to 5 messages, once.
func TestAutopipelinePublisherStoresEveryMessage(t *testing.T) {
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("bench-autopipeline")
	defer client.Del(context.Background(), topic)

	pub, err := newAutopipelinePublisher(redistest.Addr())
	if err != nil {
		t.Fatal(err)
	}
	want := redistest.PublishConcurrently(t, pub, topic, 16, 50, func(c, i int) int { return 1 + (c+i)%5 })
	redistest.CloseTwice(t, pub, errAutopipelineClosed)
	entries, err := client.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		uuid, _ := e.Values["_watermill_message_uuid"].(string)
		if seen[uuid] {
			t.Fatalf("message %s stored twice", uuid)
		}
		seen[uuid] = true
	}
	if len(entries) != want {
		t.Fatalf("%d entries, want %d", len(entries), want)
	}
}

// A reply Redis sends as an error reaches the caller.
func TestAutopipelinePublisherReturnsRedisErrors(t *testing.T) {
	client := redistest.NewClient(t)
	key := redistest.RandomTopic("bench-autopipeline-string")
	defer client.Del(context.Background(), key)
	if err := client.Set(context.Background(), key, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pub, err := newAutopipelinePublisher(redistest.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(key, message.NewMessage(watermill.NewUUID(), nil)); err == nil {
		t.Fatal("XADD to a string key succeeded")
	}
	// The connection is still in step: the next call gets its own reply.
	other := key + "-stream"
	defer client.Del(context.Background(), other)
	if err := pub.Publish(other, message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Fatalf("Publish after an error reply: %v", err)
	}
}
