package main

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// noiseWindow is how long the server is watched, with this benchmark idle,
// to estimate the commands other clients send meanwhile.
const noiseWindow = 300 * time.Millisecond

// consumeWorkload measures consuming n pre-filled messages through a
// message.Router with a no-op handler, and the Redis commands that took.
func (b *bench) consumeWorkload(ctx context.Context) (workloadReport, *commandsReport) {
	wr := newWorkloadReport(wConsume, b.cfg)
	cr := newCommandsReport(b.cfg)
	if b.cfg.warmup {
		for _, s := range subscribingSides(b.sides) {
			b.progress("consume: warm-up %s (%d msgs)", s.name, b.warmupCount())
			b.consumeBounded(ctx, s, b.topic(wConsume, "warmup", s.name), b.warmupCount(), false)
		}
	}
	for run := range b.cfg.count {
		limit := routerLimitRun(b.cfg.n)
		b.progress("consume: %s run %d: %s", sideRouterLimit, run+1, limit.summary())
		wr.add(sideRouterLimit, limit)
		for _, s := range subscribingSides(b.sidesInOrder(run)) {
			if ctx.Err() != nil {
				return wr.finish(), cr.finish()
			}
			r, cmds := b.consumeBounded(ctx, s, b.topic(wConsume, s.name, fmt.Sprint(run)), b.cfg.n, true)
			b.progress("consume: %s run %d: %s", s.name, run+1, r.summary())
			if limit.ProcessCPUPerMsgUs > 0 && r.ProcessCPUPerMsgUs > 0 {
				// The rate's share of the limit measured in CPU instead of
				// time: steadier when other work shares the machine.
				b.progress("consume: %s run %d: the Router limit's CPU per msg is %.2f of this side's", s.name, run+1, limit.ProcessCPUPerMsgUs/r.ProcessCPUPerMsgUs)
			}
			if cmds != nil {
				b.progress("consume: %s run %d: %s", s.name, run+1, cmds.summary())
			}
			wr.add(s.name, r)
			cr.add(s.name, cmds)
		}
	}
	return wr.finish(), cr.finish()
}

func (b *bench) consumeBounded(ctx context.Context, s *side, topic string, n int, measure bool) (sideRun, *sideCommands) {
	type result struct {
		run  sideRun
		cmds *sideCommands
	}
	r, abandoned := bounded(ctx, b.cfg.timeout, func(ctx context.Context) result {
		run, cmds := b.consumeRun(ctx, s, topic, n, measure)
		return result{run, cmds}
	})
	if abandoned {
		return sideRun{Messages: n, TimedOut: true, Note: fmt.Sprintf("did not stop within %s after the time limit; left behind", abandonGrace)}, nil
	}
	return r.run, r.cmds
}

// consumeRun pre-fills topic with n messages, then runs a Router with a
// no-op handler over a consumer-group subscriber of side s and times it from
// router start until the n-th message was handled. With measure, it also
// takes INFO commandstats and the side's own command counts before the
// router starts and after it closed (so batched acks flushed at close are
// counted too).
func (b *bench) consumeRun(ctx context.Context, s *side, topic string, n int, measure bool) (sideRun, *sideCommands) {
	if err := b.prefill(ctx, topic, n, nil); err != nil {
		return sideRun{Messages: n, Error: err.Error()}, nil
	}
	sub, err := s.newSubscriber(benchGroup)
	if err != nil {
		return sideRun{Messages: n, Error: err.Error()}, nil
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		_ = sub.Close()
		return sideRun{Messages: n, Error: err.Error()}, nil
	}
	var handled atomic.Int64
	done := make(chan struct{})
	router.AddConsumerHandler("bench-consume", topic, sub, func(*message.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})

	var (
		noise         float64
		serverBefore  cmdCounts
		clientBefore  cmdCounts
		measureFailed error
		measuredFrom  time.Time
	)
	if measure {
		noise, measureFailed = b.noiseRate(ctx)
		measuredFrom = time.Now()
		if measureFailed == nil {
			serverBefore, measureFailed = serverCommandStats(ctx, b.setup)
		}
		clientBefore = s.counter.snapshot()
	}

	runDone := make(chan error, 1)
	cpuBefore := b.sampleCPU(ctx)
	start := time.Now()
	go func() {
		// Every goroutine the router and the subscriber start inherits the
		// label, so a -cpuprofile splits by side (pprof -tagfocus side=redrive).
		pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("side", s.name)))
		runDone <- router.Run(context.Background())
	}()
	var r sideRun
	select {
	case <-done:
		r = newSideRun(n, n, time.Since(start))
		cpuAfter := b.sampleCPU(ctx)
		r.setCPU(cpuBefore, cpuAfter)
		if measure {
			b.progress("consume: %s: %s", s.name, gcSummary(cpuBefore, cpuAfter, n))
		}
	case <-ctx.Done():
		r = newSideRun(n, int(handled.Load()), time.Since(start))
		r.TimedOut = true
	case err := <-runDone:
		r = newSideRun(n, int(handled.Load()), time.Since(start))
		r.Error = fmt.Sprintf("router stopped before all messages were handled: %v", err)
		runDone = nil
	}
	if err := router.Close(); err != nil && r.Error == "" {
		r.Note = "router close: " + err.Error()
	}
	if runDone != nil {
		select {
		case <-runDone:
		case <-time.After(abandonGrace):
			r.Note = "router did not stop"
		}
	}

	// The counts cover router start to router closed (acks flushed at close
	// included); the rate covers router start to the last message handled.
	bctx, cancel := bookkeepingContext()
	defer cancel()
	var serverAfter cmdCounts
	var clientAfter cmdCounts
	if measure && measureFailed == nil {
		serverAfter, measureFailed = serverCommandStats(bctx, b.setup)
		clientAfter = s.counter.snapshot()
	}
	window := time.Since(measuredFrom)

	if pending, err := b.setup.XPending(bctx, topic, benchGroup).Result(); err == nil && pending.Count > 0 {
		r.Note = join(r.Note, fmt.Sprintf("%d entries still pending (not acked) after the router closed", pending.Count))
	}
	if !measure || r.TimedOut || r.Error != "" {
		return r, nil
	}
	cmds := &sideCommands{Consumed: n, NoisePerSec: noise, WindowSeconds: window.Seconds()}
	if measureFailed != nil {
		cmds.Error = measureFailed.Error()
		return r, cmds
	}
	// Own INFO calls in the window: the snapshot before, and the two CPU
	// samples around the timed section.
	cmds.setServer(serverDelta(serverBefore, serverAfter, 3))
	cmds.setClient(clientAfter.sub(clientBefore))
	return r, cmds
}

// noiseRate watches INFO commandstats for noiseWindow while this benchmark
// sends nothing, and returns the commands per second other clients sent.
func (b *bench) noiseRate(ctx context.Context) (float64, error) {
	before, err := serverCommandStats(ctx, b.setup)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-time.After(noiseWindow):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	after, err := serverCommandStats(ctx, b.setup)
	if err != nil {
		return 0, err
	}
	return float64(serverDelta(before, after, 1).total()) / time.Since(start).Seconds(), nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
