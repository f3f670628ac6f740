package redrive

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/startstop"
	"github.com/redrive-go/redrive/internal/testsignal"
)

// consumerJanitor is the service that removes consumers idle for
// ConsumerTimeout from the group, every CheckConsumersInterval, so the group
// does not fill up with the names of dead processes. A consumer with pending
// entries is never removed: that would drop its entries.
type consumerJanitor struct {
	startstop.Base
	sub *subscription

	TestSignals consumerJanitorTestSignals
}

type consumerJanitorTestSignals struct {
	// Deleted carries the name of each consumer removed.
	Deleted testsignal.Signal[string]
	// Pass is sent after every pass.
	Pass testsignal.Signal[struct{}]
}

func newConsumerJanitor(s *subscription) *consumerJanitor { return &consumerJanitor{sub: s} }

func (j *consumerJanitor) Start(ctx context.Context) error {
	startPeriodic(ctx, &j.Base, j.sub.config().CheckConsumersInterval, j.sub.logger,
		"Removing idle consumers failed", j.cleanOnce,
		func(error) { j.TestSignals.Pass.Signal(struct{}{}) })
	return nil
}

func (j *consumerJanitor) cleanOnce(ctx context.Context) error {
	s := j.sub
	cfg := s.config()
	for _, stream := range s.streams() {
		consumers, err := s.client.XInfoConsumers(ctx, stream, s.group).Result()
		if err != nil {
			if redisinfo.IsNoGroup(err) {
				continue
			}
			return fmt.Errorf("list consumers of %q: %w", stream, err)
		}
		for _, c := range consumers {
			if c.Name == cfg.Consumer || c.Pending > 0 || c.Idle < cfg.ConsumerTimeout {
				continue
			}
			deleted, err := scripts.DeleteIdleConsumer.Run(ctx, s.client, scripts.DeleteIdleConsumerArgs{Stream: stream, Group: s.group, Consumer: c.Name})
			if err != nil {
				return fmt.Errorf("remove consumer %q from %q: %w", c.Name, stream, err)
			}
			if deleted {
				s.logger.Info("Removed idle consumer", watermill.LogFields{"stream": stream, "idle_consumer": c.Name, "idle": c.Idle.String()})
				j.TestSignals.Deleted.Signal(c.Name)
			}
		}
	}
	return nil
}
