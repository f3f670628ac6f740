package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// benchGroup is the consumer group every subscriber of the benchmark uses.
const benchGroup = "bench"

// abandonGrace is how long a workload past its time limit gets to wind down
// (close its router and subscriber) before the benchmark leaves it behind.
const abandonGrace = 20 * time.Second

// bench holds what all workloads share: the configuration, the two sides, a
// setup client (prefill, INFO, clean-up; its commands are not attributed to
// either side) and the keys created.
type bench struct {
	cfg     config
	runID   string
	prefix  string
	setup   *redis.Client
	sides   []*side
	machine machine
	payload []byte
	log     io.Writer
	started time.Time

	mu   sync.Mutex
	keys map[string]struct{}
}

func newBench(ctx context.Context, cfg config, log io.Writer) (*bench, error) {
	var id [4]byte
	_, _ = rand.Read(id[:])
	b := &bench{
		cfg:     cfg,
		runID:   hex.EncodeToString(id[:]),
		setup:   redis.NewClient(&redis.Options{Addr: cfg.addr}),
		payload: make([]byte, cfg.size),
		log:     log,
		started: time.Now(),
		keys:    map[string]struct{}{},
	}
	b.prefix = "redrive-bench-" + b.runID + "-"
	_, _ = rand.Read(b.payload)

	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.setup.Ping(pingCtx).Err(); err != nil {
		_ = b.setup.Close()
		return nil, fmt.Errorf("redis at %s does not answer (set REDIS_ADDR): %w", cfg.addr, err)
	}
	m, err := describeMachine(pingCtx, b.setup, cfg.addr)
	if err != nil {
		_ = b.setup.Close()
		return nil, fmt.Errorf("read redis server info: %w", err)
	}
	b.machine = m

	var logger watermill.LoggerAdapter = watermill.NopLogger{}
	if cfg.verbose {
		logger = watermill.NewStdLoggerWithOut(log, false, false)
	}
	for _, name := range cfg.sides {
		b.sides = append(b.sides, newSide(name, cfg.addr, logger))
	}
	b.progress("machine: %d CPUs, %s, %s; Redis %s at %s; run id %s", m.NumCPU, m.CPUModel, m.GoVersion, m.RedisVersion, m.RedisAddr, b.runID)
	return b, nil
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) side(name string) *side {
	for _, s := range b.sides {
		if s.name == name {
			return s
		}
	}
	return nil
}

// sidesInOrder alternates which side goes first from one run to the next,
// so neither always runs on a warmer (or more fragmented) server.
func (b *bench) sidesInOrder(run int) []*side {
	out := slices.Clone(b.sides)
	if run%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// subscribingSides leaves out the sides that only publish.
func subscribingSides(sides []*side) []*side {
	return slices.DeleteFunc(slices.Clone(sides), func(s *side) bool { return s.newSubscriber == nil })
}

// topic returns a fresh topic name carrying the run ID, and remembers it and
// the redrive keys derived from it for the clean-up.
func (b *bench) topic(parts ...string) string {
	t := b.prefix
	for i, p := range parts {
		if i > 0 {
			t += "-"
		}
		t += p
	}
	keys := redrive.KeysFor(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range []string{t, keys.Delayed, keys.Poison, keys.GroupRetry(benchGroup), keys.GroupRetryDelayed(benchGroup)} {
		b.keys[k] = struct{}{}
	}
	return t
}

// cleanup deletes every key of this run: the ones handed out by topic, and
// whatever else carries the run ID (found with SCAN, never KEYS, and never
// FLUSH*). Then it closes the clients.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.mu.Lock()
	keys := b.keys
	b.keys = map[string]struct{}{}
	b.mu.Unlock()
	iter := b.setup.Scan(ctx, 0, "*"+b.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys[iter.Val()] = struct{}{}
	}
	if err := iter.Err(); err != nil {
		b.progress("clean-up: SCAN failed: %v", err)
	}
	list := make([]string, 0, len(keys))
	for k := range keys {
		list = append(list, k)
	}
	sort.Strings(list)
	var deleted int64
	for start := 0; start < len(list); start += 500 {
		n, err := b.setup.Del(ctx, list[start:min(start+500, len(list))]...).Result()
		if err != nil {
			b.progress("clean-up: DEL failed: %v", err)
			break
		}
		deleted += n
	}
	b.progress("clean-up: deleted %d keys of run %s", deleted, b.runID)
	for _, s := range b.sides {
		_ = s.raw.Close()
	}
	_ = b.setup.Close()
}

// newMessages builds n messages with the benchmark payload; meta, when set,
// adds metadata to message i.
func (b *bench) newMessages(n int, meta func(i int, msg *message.Message)) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), b.payload)
		if meta != nil {
			meta(i, msgs[i])
		}
	}
	return msgs
}

// prefill writes n messages to topic with the setup client, in
// watermill-redisstream's wire format (which both sides read), 1,000 per
// pipeline. Neither side's publisher is involved.
func (b *bench) prefill(ctx context.Context, topic string, n int, meta func(i int, msg *message.Message)) error {
	var m redisstream.DefaultMarshallerUnmarshaller
	msgs := b.newMessages(n, meta)
	for start := 0; start < n; start += 1000 {
		pipe := b.setup.Pipeline()
		for _, msg := range msgs[start:min(start+1000, n)] {
			fields, err := m.Marshal(topic, msg)
			if err != nil {
				return err
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: fields})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("prefill %s: %w", topic, err)
		}
	}
	return nil
}

// bounded runs f with a context that ends after timeout. f should notice
// and return a partial result; if it has not returned abandonGrace later, it
// is left behind and bounded returns abandoned = true.
func bounded[T any](parent context.Context, timeout time.Duration, f func(ctx context.Context) T) (result T, abandoned bool) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	ch := make(chan T, 1)
	go func() { ch <- f(ctx) }()
	select {
	case r := <-ch:
		return r, false
	case <-ctx.Done():
	}
	select {
	case r := <-ch:
		return r, false
	case <-time.After(abandonGrace):
		var zero T
		return zero, true
	}
}

// bookkeepingContext is for calls made after a workload, even one whose
// context has ended.
func bookkeepingContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// runAll runs the selected workloads in a fixed order.
func (b *bench) runAll(ctx context.Context) *report {
	rep := &report{Machine: b.machine, RunID: b.runID, Settings: b.settings()}
	for _, w := range allWorkloads {
		if !b.cfg.runs(w) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		switch w {
		case wSequential, wBatch, wConcurrent:
			rep.Workloads = append(rep.Workloads, b.publishWorkload(ctx, w))
		case wConsume:
			wr, cr := b.consumeWorkload(ctx)
			rep.Workloads = append(rep.Workloads, wr)
			rep.Commands = cr
		case wRetry:
			rep.Retry = b.retryWorkload(ctx)
		case wDelayed:
			rep.Delayed = b.delayedWorkload(ctx, false)
		case wDelayedCross:
			rep.DelayedCross = b.delayedWorkload(ctx, true)
		case wIdle:
			rep.Idle = b.idleWorkload(ctx)
		}
	}
	return rep
}

func (b *bench) settings() settings {
	return settings{
		Messages:        b.cfg.n,
		PayloadBytes:    b.cfg.size,
		BatchSize:       b.cfg.batch,
		Goroutines:      b.cfg.goroutines,
		Count:           b.cfg.count,
		Warmup:          b.cfg.warmup,
		TimeoutSeconds:  b.cfg.timeout.Seconds(),
		Workloads:       b.cfg.workloads,
		Sides:           b.cfg.sides,
		AnchorLimitSecs: b.cfg.anchorLimit.Seconds(),
	}
}

// warmupCount is the size of the unmeasured run before a workload.
func (b *bench) warmupCount() int {
	return max(min(b.cfg.n/10, 2000), 100)
}
