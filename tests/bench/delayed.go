package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
)

// dueKey carries a delayed message's intended due time, Unix nanoseconds.
const dueKey = "bench_due_unix_nano"

// delayedGrace is how long after the last due time the workload waits for
// stragglers.
const delayedGrace = 10 * time.Second

// delayedWorkload publishes delayed messages (delay.Message with delay.For)
// through redrive's publisher at a steady rate, consumes them with a redrive
// subscriber, and records arrival minus intended due time. The intended due
// time is taken right after delay.For, before Publish, so it is never later
// than what the publisher itself computes: a message counted early really
// arrived before its delay was up.
// With crossProcess, a child process (this program again) publishes, so
// nothing in the subscriber's process learns of the schedule directly.
func (b *bench) delayedWorkload(ctx context.Context, crossProcess bool) *delayedReport {
	total := max(int(float64(b.cfg.delayedRate)*b.cfg.delayedDuration.Seconds()), 1)
	newReport := func() *delayedReport {
		return &delayedReport{
			Messages:      total,
			Delay:         b.cfg.delay.String(),
			CrossProcess:  crossProcess,
			Jitter:        "±" + b.cfg.delayJitter.String(),
			P99Target:     atMost(25, " ms"),
			NoEarlyTarget: atMost(0, " early"),
		}
	}
	rep := newReport()
	s := b.side(sideRedrive)
	if s == nil {
		rep.Error = "needs the redrive side (-sides)"
		return rep
	}
	b.progress("delayed: %d msgs at %d msg/s, delay %s %s, published by another process: %v", total, b.cfg.delayedRate, rep.Delay, rep.Jitter, crossProcess)
	limit := b.cfg.delayedDuration + b.cfg.delay + b.cfg.delayJitter + delayedGrace
	_, abandoned := bounded(ctx, limit, func(ctx context.Context) struct{} {
		b.delayedRun(ctx, s, rep, crossProcess)
		return struct{}{}
	})
	if abandoned {
		// The run still owns the old report; start a fresh one.
		rep = newReport()
		rep.Error = "did not stop after its time limit; left behind"
	}
	rep.P99Target.check(rep.P99Ms, rep.Error == "" && rep.Received > 0)
	rep.NoEarlyTarget.check(float64(rep.Early), rep.Error == "" && rep.Received > 0)
	b.progress("delayed: received %d of %d; lateness p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d early",
		rep.Received, rep.Messages, rep.P50Ms, rep.P99Ms, rep.MaxMs, rep.Early)
	return rep
}

func (b *bench) delayedRun(ctx context.Context, s *side, rep *delayedReport, crossProcess bool) {
	topic := b.topic(wDelayed, s.name)
	sub, err := s.newRedriveSubscriber(benchGroup)
	if err != nil {
		rep.Error = err.Error()
		return
	}
	defer sub.Close()
	pub, err := s.newRedrivePublisher()
	if err != nil {
		rep.Error = err.Error()
		return
	}
	defer pub.Close()
	// Subscribing first starts the topic's delayed mover before anything is
	// scheduled.
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		rep.Error = err.Error()
		return
	}

	var (
		mu        sync.Mutex
		lateness  = make([]time.Duration, 0, rep.Messages)
		seen      = make(map[string]struct{}, rep.Messages)
		dupes     int
		allIn     = make(chan struct{})
		recvEnded = make(chan struct{})
	)
	go func() {
		defer close(recvEnded)
		for msg := range msgs {
			arrived := time.Now()
			due, err := strconv.ParseInt(msg.Metadata.Get(dueKey), 10, 64)
			msg.Ack()
			if err != nil {
				continue
			}
			mu.Lock()
			if _, again := seen[msg.UUID]; again {
				dupes++
			} else {
				seen[msg.UUID] = struct{}{}
				lateness = append(lateness, arrived.Sub(time.Unix(0, due)))
				if len(lateness) == rep.Messages {
					close(allIn)
				}
			}
			mu.Unlock()
		}
	}()

	var (
		published int
		lastDue   time.Time
	)
	if crossProcess {
		published, lastDue, rep.PublishRate, err = publishDelayedInChild(ctx, b.cfg, topic, rep.Messages)
	} else {
		published, lastDue, rep.PublishRate, err = publishDelayed(ctx, pub, topic, rep.Messages, b.cfg, b.payload)
	}
	if err != nil {
		rep.Error = "publish: " + err.Error()
	}

	if rep.Error == "" && published == rep.Messages {
		wait := time.NewTimer(max(time.Until(lastDue), 0) + delayedGrace)
		defer wait.Stop()
		select {
		case <-allIn:
		case <-wait.C:
			rep.TimedOut = true
		case <-ctx.Done():
			rep.TimedOut = true
		}
	}
	_ = sub.Close()
	select {
	case <-recvEnded:
	case <-time.After(abandonGrace):
	}

	mu.Lock()
	defer mu.Unlock()
	rep.Received, rep.Duplicates = len(lateness), dupes
	if rep.TimedOut && rep.Error == "" {
		rep.Error = fmt.Sprintf("only %d of %d delayed messages arrived within %s of the last due time", len(lateness), rep.Messages, delayedGrace)
	}
	if len(lateness) == 0 {
		return
	}
	sorted := slices.Clone(lateness)
	slices.Sort(sorted)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rep.P50Ms = ms(percentile(sorted, 0.50))
	rep.P99Ms = ms(percentile(sorted, 0.99))
	rep.MaxMs = ms(sorted[len(sorted)-1])
	rep.MinMs = ms(sorted[0])
	for _, l := range sorted {
		if l < 0 {
			rep.Early++
		}
	}
	if rep.Early > 0 {
		rep.MaxEarlyMs = -rep.MinMs
	}
}

// publishDelayed publishes total delayed messages to topic at -delayed-rate,
// each with -delay ± -delay-jitter and its intended due time in metadata. It
// returns how many it published, the latest due time and the rate reached.
func publishDelayed(ctx context.Context, pub message.Publisher, topic string, total int, cfg config, payload []byte) (int, time.Time, float64, error) {
	interval := time.Second / time.Duration(cfg.delayedRate)
	jitter := int64(cfg.delayJitter)
	var lastDue time.Time
	start := time.Now()
	published := 0
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		d := cfg.delay + time.Duration(rand.Int64N(2*jitter+1)-jitter)
		msg := message.NewMessage(watermill.NewUUID(), payload)
		delay.Message(msg, delay.For(d))
		due := time.Now().Add(d)
		msg.Metadata.Set(dueKey, strconv.FormatInt(due.UnixNano(), 10))
		if err := pub.Publish(topic, msg); err != nil {
			return published, lastDue, float64(published) / time.Since(start).Seconds(), err
		}
		published++
		if due.After(lastDue) {
			lastDue = due
		}
	}
	return published, lastDue, float64(published) / time.Since(start).Seconds(), nil
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
