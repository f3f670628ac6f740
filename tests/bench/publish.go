package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// publishWorkload measures one of the publish workloads on each side,
// cfg.count times after a warm-up.
func (b *bench) publishWorkload(ctx context.Context, w string) workloadReport {
	wr := newWorkloadReport(w, b.cfg)
	if b.cfg.warmup {
		for _, s := range b.sides {
			b.progress("%s: warm-up %s (%d msgs)", w, s.name, b.warmupCount())
			b.publishBounded(ctx, s, w, b.topic(w, "warmup", s.name), b.warmupCount())
		}
	}
	for run := range b.cfg.count {
		for _, s := range b.sidesInOrder(run) {
			if ctx.Err() != nil {
				return wr.finish()
			}
			r := b.publishBounded(ctx, s, w, b.topic(w, s.name, fmt.Sprint(run)), b.cfg.n)
			b.progress("%s: %s run %d: %s", w, s.name, run+1, r.summary())
			wr.add(s.name, r)
		}
	}
	return wr.finish()
}

func (b *bench) publishBounded(ctx context.Context, s *side, w, topic string, n int) sideRun {
	r, abandoned := bounded(ctx, b.cfg.timeout, func(ctx context.Context) sideRun {
		return b.publishRun(ctx, s, w, topic, n)
	})
	if abandoned {
		return sideRun{Messages: n, TimedOut: true, Note: fmt.Sprintf("did not stop within %s after the time limit; left behind", abandonGrace)}
	}
	return r
}

// publishRun publishes n fresh messages to topic with a new publisher of
// side s, then checks the stream holds exactly n entries. Building the
// messages is not timed.
func (b *bench) publishRun(ctx context.Context, s *side, w, topic string, n int) sideRun {
	msgs := b.newMessages(n, nil)
	pub, err := s.newPublisher()
	if err != nil {
		return sideRun{Messages: n, Error: err.Error()}
	}
	defer pub.Close()

	var sent atomic.Int64
	cpuBefore := b.sampleCPU(ctx)
	start := time.Now()
	switch w {
	case wSequential:
		err = publishSequential(ctx, pub, topic, msgs, &sent)
	case wBatch:
		err = publishBatches(ctx, pub, topic, msgs, b.cfg.batch, &sent)
	case wConcurrent:
		err = publishConcurrent(ctx, pub, topic, msgs, b.cfg.goroutines, &sent)
	}
	r := newSideRun(n, int(sent.Load()), time.Since(start))
	r.setCPU(cpuBefore, b.sampleCPU(ctx))
	switch {
	case ctx.Err() != nil:
		r.TimedOut = true
		return r
	case err != nil:
		r.Error = err.Error()
		return r
	}

	bctx, cancel := bookkeepingContext()
	defer cancel()
	if got, err := b.setup.XLen(bctx, topic).Result(); err != nil {
		r.Error = "check stream length: " + err.Error()
	} else if got != int64(n) {
		r.Error = fmt.Sprintf("stream holds %d entries after publishing %d", got, n)
	} else if bytes, err := b.setup.MemoryUsage(bctx, topic, 0).Result(); err != nil {
		r.Error = "stream memory usage: " + err.Error()
	} else {
		r.StreamBytesPerMsg = float64(bytes) / float64(n)
	}
	return r
}

func publishSequential(ctx context.Context, pub message.Publisher, topic string, msgs []*message.Message, sent *atomic.Int64) error {
	for _, msg := range msgs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := pub.Publish(topic, msg); err != nil {
			return err
		}
		sent.Add(1)
	}
	return nil
}

func publishBatches(ctx context.Context, pub message.Publisher, topic string, msgs []*message.Message, size int, sent *atomic.Int64) error {
	for start := 0; start < len(msgs); start += size {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batch := msgs[start:min(start+size, len(msgs))]
		if err := pub.Publish(topic, batch...); err != nil {
			return err
		}
		sent.Add(int64(len(batch)))
	}
	return nil
}

// publishConcurrent splits msgs between g goroutines, each publishing one
// message per call; they start together.
func publishConcurrent(ctx context.Context, pub message.Publisher, topic string, msgs []*message.Message, g int, sent *atomic.Int64) error {
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		release  = make(chan struct{})
	)
	per := (len(msgs) + g - 1) / g
	for start := 0; start < len(msgs); start += per {
		part := msgs[start:min(start+per, len(msgs))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			for _, msg := range part {
				if ctx.Err() != nil {
					return
				}
				if err := pub.Publish(topic, msg); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				sent.Add(1)
			}
		}()
	}
	close(release)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}
