package redrive

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

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
	config consumerJanitorConfig

	TestSignals consumerJanitorTestSignals
}

// consumerJanitorConfig is what the consumer janitor needs.
type consumerJanitorConfig struct {
	Client  redis.UniversalClient
	Streams []string
	Group   string
	// Consumer is this subscriber, never removed.
	Consumer string
	// ConsumerTimeout and Interval are SubscriberConfig's ConsumerTimeout
	// and CheckConsumersInterval.
	ConsumerTimeout time.Duration
	Interval        time.Duration
	Logger          watermill.LoggerAdapter
}

type consumerJanitorTestSignals struct {
	// Deleted carries the name of each consumer removed.
	Deleted testsignal.Signal[string]
	// Pass is sent after every pass.
	Pass testsignal.Signal[struct{}]
}

// Init enables every signal for the test tb.
func (ts *consumerJanitorTestSignals) Init(tb testsignal.TB) {
	ts.Deleted.Init(tb)
	ts.Pass.Init(tb)
}

func newConsumerJanitor(config consumerJanitorConfig) *consumerJanitor {
	return &consumerJanitor{config: config}
}

func (j *consumerJanitor) Start(ctx context.Context) error {
	startPeriodic(ctx, &j.Base, j.config.Interval, j.config.Logger,
		"Removing idle consumers failed", j.cleanOnce,
		func(error) { j.TestSignals.Pass.Signal(struct{}{}) })
	return nil
}

func (j *consumerJanitor) cleanOnce(ctx context.Context) error {
	cfg := j.config
	for _, stream := range cfg.Streams {
		consumers, err := cfg.Client.XInfoConsumers(ctx, stream, cfg.Group).Result()
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
			deleted, err := scripts.DeleteIdleConsumer.Run(ctx, cfg.Client, scripts.DeleteIdleConsumerArgs{Stream: stream, Group: cfg.Group, Consumer: c.Name})
			if err != nil {
				return fmt.Errorf("remove consumer %q from %q: %w", c.Name, stream, err)
			}
			if deleted {
				cfg.Logger.Info("Removed idle consumer", watermill.LogFields{"stream": stream, "idle_consumer": c.Name, "idle": c.Idle.String()})
				j.TestSignals.Deleted.Signal(c.Name)
			}
		}
	}
	return nil
}
