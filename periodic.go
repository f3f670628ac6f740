package redrive

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/redrive-go/redrive/internal/startstop"
)

// startPeriodic is the loop of the subscription's periodic services (the
// claimer, the consumer janitor, the in-flight keeper, the trimmer): it starts on base,
// runs pass every interval until the service stops, and logs failures
// without flooding. after, when set, runs after every pass with its error.
func startPeriodic(ctx context.Context, base *startstop.Base, interval time.Duration, logger watermill.LoggerAdapter,
	failureMsg string, pass func(context.Context) error, after func(error)) {
	startPeriodicFrom(ctx, base, nil, nil, interval, interval, logger, failureMsg, pass, after)
}

// startPeriodicFrom is startPeriodic with the first pass after first instead
// of after one interval, counted once ready is closed (nil: at once); a
// notification of trigger (nil: none) runs a pass at once.
func startPeriodicFrom(ctx context.Context, base *startstop.Base, ready <-chan struct{}, trigger *passTrigger, first, interval time.Duration, logger watermill.LoggerAdapter,
	failureMsg string, pass func(context.Context) error, after func(error)) {
	ctx, shouldStart, stopped := base.StartInit(ctx)
	if !shouldStart {
		return
	}
	go func() {
		defer close(stopped)
		var kick chan time.Time
		if trigger != nil {
			kick = trigger.registry.listen(trigger.key)
			defer trigger.registry.forget(trigger.key, kick)
		}
		if ready != nil {
			select {
			case <-ready:
			case <-ctx.Done():
				return
			}
		}
		failures := newErrorLog(logger, failureMsg)
		timer := time.NewTimer(first)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-kick:
			}
			timer.Reset(interval)
			err := pass(ctx)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				failures.failed(err)
			default:
				failures.succeeded()
			}
			if after != nil {
				after(err)
			}
		}
	}()
}

// passTrigger names the wake-ups that run a periodic service's pass at once:
// the notifications of key in registry.
type passTrigger struct {
	registry *wakeupRegistry
	key      string
}
