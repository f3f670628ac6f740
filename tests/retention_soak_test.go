package tests

// The retention soak: messages through a topic read by two consumer groups,
// once with the subscribers trimming and once without, on a test-owned
// redis-server. With trimming the stream's length and MEMORY USAGE stay
// bounded however many messages pass; without, they grow linearly. Both
// curves are printed (go test -v) for the README.
//
// The number of messages is a setting:
//
//	go test ./tests -run TestRetentionSoak -v -redrive.retention.messages=1000000
//
// or REDRIVE_RETENTION_MESSAGES=1000000. The test is skipped with -short.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

const (
	// retentionSoakDefaultMessages keeps the CI run to well under a minute
	// under -race; the README's figures come from a run of 1,000,000.
	retentionSoakDefaultMessages = 100000
	// retentionSoakSamples is the number of points of each curve.
	retentionSoakSamples = 20
	// retentionSoakRetain and retentionSoakInterval are the trimming run's
	// RetainAcked and TrimInterval: short, so a modest run shows the bound.
	retentionSoakRetain   = 200 * time.Millisecond
	retentionSoakInterval = 100 * time.Millisecond
)

var retentionSoakMessagesFlag = flag.Int("redrive.retention.messages", 0,
	"how many messages the retention soak publishes (default $REDRIVE_RETENTION_MESSAGES, else 100000)")

func retentionSoakMessages(t *testing.T) int {
	t.Helper()
	n := retentionSoakDefaultMessages
	if v := os.Getenv("REDRIVE_RETENTION_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			t.Fatalf("REDRIVE_RETENTION_MESSAGES=%q is not a number of at least 1000", v)
		}
	}
	if *retentionSoakMessagesFlag > 0 {
		n = *retentionSoakMessagesFlag
	}
	return n
}

// retentionSample is one point of a curve.
type retentionSample struct {
	published int
	length    int64
	memory    int64
}

// retentionGroup counts what one consumer group received, by message index.
type retentionGroup struct {
	mu       sync.Mutex
	seen     []bool
	distinct atomic.Int64
	dupes    atomic.Int64
}

func (g *retentionGroup) consume(t *testing.T, msgs <-chan *message.Message) {
	for m := range msgs {
		i, err := strconv.Atoi(string(m.Payload[:strings.IndexByte(string(m.Payload), ':')]))
		if err != nil {
			t.Errorf("bad payload %q", m.Payload)
		} else {
			g.mu.Lock()
			if g.seen[i] {
				g.dupes.Add(1)
			} else {
				g.seen[i] = true
				g.distinct.Add(1)
			}
			g.mu.Unlock()
		}
		m.Ack()
	}
}

// TestRetentionSoak is not parallel: it loads both cores, and its curves
// are only meaningful alone.
func TestRetentionSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak run: skipped with -short")
	}
	n := retentionSoakMessages(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	client := srv.Client(t)
	curves := map[string][]retentionSample{}
	for _, run := range []struct {
		name   string
		retain time.Duration
	}{{"trimming", retentionSoakRetain}, {"no-trimming", redrive.DisableTrimming}} {
		began := time.Now()
		curves[run.name] = retentionSoakRun(t, client, n, run.retain)
		t.Logf("%s: %d messages through two groups in %s", run.name, n, time.Since(began).Round(time.Second))
	}

	t.Logf("%12s | %12s %14s | %12s %14s", "published", "trim: XLEN", "MEMORY USAGE", "no trim: XLEN", "MEMORY USAGE")
	trimmed, kept := curves["trimming"], curves["no-trimming"]
	for i := range trimmed {
		t.Logf("%12d | %12d %14d | %12d %14d", trimmed[i].published, trimmed[i].length, trimmed[i].memory, kept[i].length, kept[i].memory)
	}
	// Without trimming every entry stays: the stream grows with the traffic.
	if last := kept[len(kept)-1]; last.length != int64(n) {
		t.Errorf("without trimming the stream has %d entries after %d messages, want all of them", last.length, n)
	}
	// With it, the second half of the run is no longer than the first: the
	// length does not grow with the number of messages.
	half := len(trimmed) / 2
	var firstMax, secondMax int64
	for i, s := range trimmed {
		if i < half {
			firstMax = max(firstMax, s.length)
		} else {
			secondMax = max(secondMax, s.length)
		}
	}
	if secondMax > 2*firstMax+int64(n/retentionSoakSamples) || secondMax >= int64(n)/4 {
		t.Errorf("with trimming the stream grew: longest %d in the first half, %d in the second, of %d messages", firstMax, secondMax, n)
	}
}

// retentionSoakRun publishes n messages to a new topic read by two groups of
// one subscriber each, in retentionSoakSamples chunks, and samples the
// stream after each. A chunk is published only when both groups have
// received all but the last chunk, so the groups keep up and what the stream
// holds is what retention keeps, not a backlog.
func retentionSoakRun(t *testing.T, client *redis.Client, n int, retain time.Duration) []retentionSample {
	ctx := context.Background()
	topic := redistest.RandomTopic("retention-soak-")
	groups := map[string]*retentionGroup{}
	var subs []*redrive.Subscriber
	for _, name := range []string{"a", "b"} {
		sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{
			Client: client, ConsumerGroup: name, RetainAcked: retain, TrimInterval: retentionSoakInterval,
		}, errorsOnlyLogger{})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
		g := &retentionGroup{seen: make([]bool, n)}
		groups[name] = g
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		go g.consume(t, msgs)
	}
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	chunk := n / retentionSoakSamples
	payload := strings.Repeat("p", 100)
	var samples []retentionSample
	published := 0
	for s := range retentionSoakSamples {
		size := chunk
		if s == retentionSoakSamples-1 {
			size = n - published
		}
		publishChunk(t, pub, topic, published, size, payload)
		published += size
		for name, g := range groups {
			want := int64(published - chunk)
			redistest.WaitFor(t, 2*time.Minute, func() bool { return g.distinct.Load() >= want },
				"group %s to receive %d of %d messages (has %d)", name, want, published, g.distinct.Load())
		}
		length, err := client.XLen(ctx, topic).Result()
		if err != nil {
			t.Fatal(err)
		}
		memory, err := client.MemoryUsage(ctx, topic, 0).Result() // SAMPLES 0: every node, exact
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, retentionSample{published: published, length: length, memory: memory})
	}
	// Every group gets every message.
	for name, g := range groups {
		redistest.WaitFor(t, 2*time.Minute, func() bool { return g.distinct.Load() == int64(n) },
			"group %s to receive all %d messages (has %d)", name, n, g.distinct.Load())
		if d := g.dupes.Load(); d > 0 {
			t.Logf("group %s: %d duplicate deliveries", name, d)
		}
	}
	for _, sub := range subs {
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if retain >= 0 {
		// Once both groups are done, nothing is held back: one more trim
		// empties the stream.
		redistest.WaitFor(t, waitTimeout, func() bool {
			r, err := redrive.TrimStream(ctx, client, topic, retain, false)
			return err == nil && r.Length == 0
		}, "the stream to be trimmed empty after both groups finished")
	}
	client.Del(ctx, topic)
	return samples
}

// publishChunk publishes messages from..from+size with payloads "i:…",
// eight callers at a time in calls of 100.
func publishChunk(t *testing.T, pub message.Publisher, topic string, from, size int, payload string) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	next.Store(int64(from))
	end := int64(from + size)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := next.Add(100) - 100
				if start >= end {
					return
				}
				stop := min(start+100, end)
				msgs := make([]*message.Message, 0, stop-start)
				for i := start; i < stop; i++ {
					msgs = append(msgs, message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%d:%s", i, payload))))
				}
				if err := pub.Publish(topic, msgs...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
