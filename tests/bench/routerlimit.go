package main

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// sideRouterLimit is no Pub/Sub but the Router's own limit: a subscriber that
// hands out ready-made messages and costs nothing, consumed by the same
// Router and no-op handler as the consume workload. A Pub/Sub's consume rate
// over it is the share of what the Router can take that the Pub/Sub reaches.
const sideRouterLimit = "router limit"

// readyMadeSubscriber hands out messages built before the timing starts,
// without waiting for their acks.
type readyMadeSubscriber struct {
	msgs    []*message.Message
	closing chan struct{}
	once    sync.Once
}

func (s *readyMadeSubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for _, m := range s.msgs {
			select {
			case out <- m:
			case <-s.closing:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
	}()
	return out, nil
}

func (s *readyMadeSubscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	return nil
}

// routerLimitRun times a Router with a no-op handler over n ready-made
// messages, from router start until the n-th message was handled.
func routerLimitRun(n int) sideRun {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("x"))
	}
	sub := &readyMadeSubscriber{msgs: msgs, closing: make(chan struct{})}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		return sideRun{Messages: n, Error: err.Error()}
	}
	var handled atomic.Int64
	done := make(chan struct{})
	router.AddConsumerHandler("router-limit", "ready-made", sub, func(*message.Message) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	cpuBefore := sampleProcessCPU()
	start := time.Now()
	go func() {
		pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("side", sideRouterLimit)))
		_ = router.Run(context.Background())
	}()
	var r sideRun
	select {
	case <-done:
		r = newSideRun(n, n, time.Since(start))
		r.setCPU(cpuBefore, sampleProcessCPU())
	case <-time.After(time.Minute):
		r = newSideRun(n, int(handled.Load()), time.Since(start))
		r.TimedOut = true
	}
	if err := router.Close(); err != nil {
		r.Note = fmt.Sprintf("router close: %v", err)
	}
	return r
}
