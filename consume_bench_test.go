package redrive

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/entryfields"
	"github.com/redrive-go/redrive/internal/redistest"
)

// BenchmarkConsume consumes messages pre-filled in a stream through one
// group subscription with default settings, acking each as it arrives, and
// reports the client side's cost per message (with -benchmem, its
// allocations). Redis work is included in the time; compare allocs/op and
// profiles (-cpuprofile, -memprofile) rather than ns/op on a busy machine.
func BenchmarkConsume(b *testing.B) {
	client := redistest.NewClient(b)
	ctx := context.Background()
	topic := redistest.RandomTopic("bench-consume")
	b.Cleanup(func() { client.Del(context.Background(), topic, KeysFor(topic).GroupRetry("bench")) })
	var m DefaultMarshallerUnmarshaller
	for start := 0; start < b.N; start += 1000 {
		pipe := client.Pipeline()
		for i := start; i < min(start+1000, b.N); i++ {
			values, err := m.Marshal(topic, message.NewMessage(watermill.NewUUID(), make([]byte, 256)))
			if err != nil {
				b.Fatal(err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: entryfields.AppendPairs(nil, values)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	sub, err := NewSubscriber(SubscriberConfig{Client: client, ConsumerGroup: "bench"}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	cpuBefore := processCPU()
	for range b.N {
		(<-msgs).Ack()
	}
	if err := sub.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(processCPU()-cpuBefore)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process used so far: on a busy machine it
// tracks the work done better than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
