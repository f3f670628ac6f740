package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive/middleware"
)

// indexKey is the metadata key holding a message's index in a workload.
const indexKey = "bench_index"

// Retry settings shared by both sides, so the retry workloads compare like
// with like.
const (
	retryMaxRetries  = 5
	retryMultiplier  = 2
	retryMaxInterval = time.Minute
)

var errPlanned = errors.New("bench: planned failure")

// retryWorkload: n pre-filled messages, every k-th fails on its first
// attempt. redrive runs its retry middleware (requeue with a delay, nothing
// blocks); the anchor runs Watermill's middleware.Retry (sleeps in the
// handler, and redisstream delivers one message at a time). The anchor is
// stopped at -anchor-limit and its throughput taken from what it did by then.
func (b *bench) retryWorkload(ctx context.Context) *retryReport {
	rep := &retryReport{
		Messages:        b.cfg.retryN,
		FailEvery:       b.cfg.retryFailEvery,
		Interval:        b.cfg.retryInterval.String(),
		Sides:           map[string]*retrySide{},
		TimeTarget:      atMost(1.5, " s"),
		ThroughputRatio: atLeast(100, "×"),
	}
	// Redrive first: it is short, and the anchor's minute must not delay the
	// verdict that matters most.
	for _, name := range []string{sideRedrive, sideAnchor} {
		s := b.side(name)
		if s == nil || ctx.Err() != nil {
			continue
		}
		limit := b.cfg.timeout
		if name == sideAnchor {
			limit = b.cfg.anchorLimit
			b.progress("retry: %s (stopped after %s at the latest)", name, limit)
		} else {
			b.progress("retry: %s", name)
		}
		r, abandoned := bounded(ctx, limit+abandonGrace, func(ctx context.Context) *retrySide {
			return b.retryRun(ctx, s, b.topic(wRetry, name), limit)
		})
		if abandoned {
			r = &retrySide{Messages: b.cfg.retryN, LimitSec: limit.Seconds(), Error: "did not stop after its time limit; left behind"}
		}
		rep.Sides[name] = r
		b.progress("retry: %s: %s", name, r.summary())
	}

	// A redrive side stopped at its limit still has a time (the limit, a
	// MISS) and a throughput.
	r, a := rep.Sides[sideRedrive], rep.Sides[sideAnchor]
	rOK := r != nil && r.Error == "" && r.Rate > 0
	rep.TimeTarget.check(valueOr(r, func(r *retrySide) float64 { return r.Seconds }), rOK)
	aOK := a != nil && a.Error == "" && a.Rate > 0
	if rOK && aOK {
		rep.Ratio = r.Rate / a.Rate
	}
	rep.ThroughputRatio.check(rep.Ratio, rOK && aOK)
	return rep
}

func valueOr[T any](p *T, f func(*T) float64) float64 {
	if p == nil {
		return 0
	}
	return f(p)
}

func (r *retrySide) summary() string {
	s := fmt.Sprintf("%s of %s processed in %.3f s = %.1f msg/s, %d planned failures, %d duplicates",
		groupDigits(int64(r.Processed)), groupDigits(int64(r.Messages)), r.Seconds, r.Rate, r.PlannedFailures, r.Duplicates)
	if r.Capped {
		s += fmt.Sprintf(" (stopped at the %s limit)", time.Duration(r.LimitSec*float64(time.Second)))
	}
	if r.Poisoned > 0 {
		s += fmt.Sprintf(", %d poisoned", r.Poisoned)
	}
	if r.Error != "" {
		s += "; ERROR: " + r.Error
	}
	if r.Note != "" {
		s += "; " + r.Note
	}
	return s
}

// retryTracker is the handler of the retry workload: message i fails on its
// first attempt when i is a multiple of failEvery, and succeeds otherwise.
type retryTracker struct {
	n         int
	failEvery int
	failed    sync.Map // index -> struct{}
	succeeded sync.Map // index -> struct{}
	processed atomic.Int64
	failures  atomic.Int64
	dupes     atomic.Int64
	done      chan struct{}
}

func newRetryTracker(n, failEvery int) *retryTracker {
	return &retryTracker{n: n, failEvery: failEvery, done: make(chan struct{})}
}

func (t *retryTracker) handle(msg *message.Message) error {
	i, err := strconv.Atoi(msg.Metadata.Get(indexKey))
	if err != nil {
		return fmt.Errorf("bench: message %s has no %s: %w", msg.UUID, indexKey, err)
	}
	if i%t.failEvery == 0 {
		if _, again := t.failed.LoadOrStore(i, struct{}{}); !again {
			t.failures.Add(1)
			return errPlanned
		}
	}
	if _, again := t.succeeded.LoadOrStore(i, struct{}{}); again {
		t.dupes.Add(1)
		return nil
	}
	if t.processed.Add(1) == int64(t.n) {
		close(t.done)
	}
	return nil
}

func (b *bench) retryRun(ctx context.Context, s *side, topic string, limit time.Duration) *retrySide {
	n := b.cfg.retryN
	res := &retrySide{Messages: n, LimitSec: limit.Seconds()}
	if err := b.prefill(ctx, topic, n, func(i int, msg *message.Message) {
		msg.Metadata.Set(indexKey, strconv.Itoa(i))
	}); err != nil {
		res.Error = err.Error()
		return res
	}
	sub, err := s.newSubscriber(benchGroup)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
	if err != nil {
		_ = sub.Close()
		res.Error = err.Error()
		return res
	}

	poisonTopic := ""
	switch s.name {
	case sideRedrive:
		pub, err := s.newRedrivePublisher()
		if err != nil {
			_ = sub.Close()
			res.Error = err.Error()
			return res
		}
		defer pub.Close()
		poisonTopic = b.topic(wRetry, s.name, "poison")
		retry, err := middleware.NewRetry(middleware.RetryConfig{
			Publisher:           pub,
			PoisonTopic:         poisonTopic,
			MaxRetries:          retryMaxRetries,
			InitialInterval:     b.cfg.retryInterval,
			MaxInterval:         retryMaxInterval,
			Multiplier:          retryMultiplier,
			RandomizationFactor: 0,
		}, s.logger)
		if err != nil {
			_ = sub.Close()
			res.Error = err.Error()
			return res
		}
		router.AddMiddleware(retry.Middleware)
	default:
		router.AddMiddleware(wmiddleware.Retry{
			MaxRetries:      retryMaxRetries,
			InitialInterval: b.cfg.retryInterval,
			MaxInterval:     retryMaxInterval,
			Multiplier:      retryMultiplier,
		}.Middleware)
	}
	tracker := newRetryTracker(n, b.cfg.retryFailEvery)
	router.AddConsumerHandler("bench-retry", topic, sub, tracker.handle)

	limitTimer := time.NewTimer(limit)
	defer limitTimer.Stop()
	runDone := make(chan error, 1)
	start := time.Now()
	go func() { runDone <- router.Run(context.Background()) }()
	select {
	case <-tracker.done:
	case <-limitTimer.C:
		res.Capped = true
	case <-ctx.Done():
		res.Error = "interrupted"
	case err := <-runDone:
		res.Error = fmt.Sprintf("router stopped early: %v", err)
		runDone = nil
	}
	elapsed := time.Since(start)
	res.Processed = int(tracker.processed.Load())
	res.PlannedFailures = tracker.failures.Load()
	res.Seconds = elapsed.Seconds()
	res.Rate = float64(res.Processed) / elapsed.Seconds()

	if err := router.Close(); err != nil {
		res.Note = "router close: " + err.Error()
	}
	if runDone != nil {
		select {
		case <-runDone:
		case <-time.After(abandonGrace):
			res.Note = join(res.Note, "router did not stop")
		}
	}
	res.Duplicates = tracker.dupes.Load()
	if poisonTopic != "" {
		bctx, cancel := bookkeepingContext()
		defer cancel()
		res.Poisoned, _ = b.setup.XLen(bctx, poisonTopic).Result()
	}
	return res
}
