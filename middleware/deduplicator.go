package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/scripts"
)

// Deduplicator defaults.
const (
	// DefaultDeduplicatorLease is how long a copy being handled holds its
	// key without refreshing it; the holder refreshes it every third of it,
	// so only a crashed holder lets it lapse.
	DefaultDeduplicatorLease = 30 * time.Second
	// DefaultDeduplicatorPollInterval is how often a copy that arrived while
	// another is being handled looks whether that one finished.
	DefaultDeduplicatorPollInterval = 100 * time.Millisecond
	// DefaultDeduplicatorPrefix starts every deduplication key.
	DefaultDeduplicatorPrefix = "redrive:dedup:"
)

// DeduplicatorConfig configures Deduplicator.
type DeduplicatorConfig struct {
	// Client is the Redis holding the keys, shared by every consumer of the
	// group. Required; never closed.
	Client redis.UniversalClient
	// Window is how long after a copy was handled successfully (or
	// poisoned) another copy with the same key is dropped. Required.
	Window time.Duration
	// KeyFactory gives a message's key. Default MessageKey: the UUID it was
	// first published with.
	KeyFactory func(msg *message.Message) (string, error)
	// Prefix starts every key in Redis; the consumer group (for a message
	// a redrive Subscriber read in a group) or else the handler's name
	// follows, so groups never drop each other's messages. Default
	// DefaultDeduplicatorPrefix.
	Prefix string
	// Lease is how long a copy being handled holds its key between
	// refreshes. Default DefaultDeduplicatorLease.
	Lease time.Duration
	// PollInterval is how often a copy waiting for another looks again.
	// Default DefaultDeduplicatorPollInterval.
	PollInterval time.Duration
}

func (c *DeduplicatorConfig) setDefaults() {
	if c.KeyFactory == nil {
		c.KeyFactory = MessageKey
	}
	if c.Prefix == "" {
		c.Prefix = DefaultDeduplicatorPrefix
	}
	if c.Lease == 0 {
		c.Lease = DefaultDeduplicatorLease
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultDeduplicatorPollInterval
	}
}

// Validate reports the first invalid field.
func (c *DeduplicatorConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive/middleware: DeduplicatorConfig.Client is nil")
	case c.Window <= 0:
		return fmt.Errorf("redrive/middleware: DeduplicatorConfig.Window is %s, must be positive", c.Window)
	case c.Lease < 3*time.Millisecond:
		return fmt.Errorf("redrive/middleware: DeduplicatorConfig.Lease is %s, must be at least 3ms", c.Lease)
	case c.PollInterval < 0:
		return fmt.Errorf("redrive/middleware: DeduplicatorConfig.PollInterval is %s, must be positive", c.PollInterval)
	}
	return nil
}

// MessageKey is the default deduplication key: the UUID a message was first
// published with (MetadataOriginalUUID on a published retry, else its UUID).
func MessageKey(msg *message.Message) (string, error) {
	if orig := msg.Metadata.Get(MetadataOriginalUUID); orig != "" {
		return orig, nil
	}
	return msg.UUID, nil
}

// Deduplicator drops a copy of a message whose key was handled successfully
// within Window, by any consumer of the group, and lets every retry of a
// failed message through. A copy that arrives while another is being handled
// waits until that one finishes: dropped if it succeeded, run if it failed.
// It works either inside or outside the retry middleware.
type Deduplicator struct {
	config DeduplicatorConfig
	logger watermill.LoggerAdapter
}

// NewDeduplicator creates the middleware.
func NewDeduplicator(config DeduplicatorConfig, logger watermill.LoggerAdapter) (*Deduplicator, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Deduplicator{config: config, logger: logger}, nil
}

// Middleware wraps a handler. A dropped copy returns nil (acked). When Redis
// cannot be reached before the handler runs, the error is returned (nacked).
func (d *Deduplicator) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		k, err := d.config.KeyFactory(msg)
		if err != nil {
			return nil, fmt.Errorf("redrive/middleware: deduplication key of %s: %w", msg.UUID, err)
		}
		handler := dedupScope(msg)
		key := d.config.Prefix + handler + ":" + k
		before := failedAttempts(msg)
		acquire := scripts.AcquireDedupKeyArgs{Key: key, CopyID: watermill.NewShortUUID(), Attempts: before, Lease: d.config.Lease}
		fields := watermill.LogFields{"message_uuid": msg.UUID, "handler": handler, "dedup_key": k}

		var token string
		for token == "" {
			acquired, err := scripts.AcquireDedupKey.Run(ctx, d.config.Client, acquire)
			if err != nil {
				return nil, fmt.Errorf("redrive/middleware: deduplication of %s: %w", msg.UUID, err)
			}
			switch acquired.State {
			case scripts.DedupAcquired:
				token = acquired.Token
			case scripts.DedupDone:
				d.logger.Info("Dropping a duplicate handled within the deduplication window", fields)
				return nil, nil
			case scripts.DedupBusy:
				if !sleep(ctx, d.config.PollInterval) {
					return nil, fmt.Errorf("redrive/middleware: waiting for a copy of %s being handled: %w", msg.UUID, context.Cause(ctx))
				}
			}
		}

		stopRefresh := d.refresh(key, token)
		produced, handlerErr := h(msg)
		stopRefresh()

		outcome := scripts.DedupSucceeded(d.config.Window)
		if handlerErr != nil || retryScheduled(msg, before) {
			outcome = scripts.DedupFailed()
		}
		releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultRequeueTimeout)
		defer cancel()
		if _, err := scripts.SettleDedupKey.Run(releaseCtx, d.config.Client, scripts.SettleDedupKeyArgs{Key: key, Token: token, Outcome: outcome}); err != nil {
			// The lease lapses by itself: later copies then run again, which
			// at-least-once allows.
			d.logger.Error("Could not settle the deduplication key", err, fields)
		}
		return produced, handlerErr
	}
}

// refresh extends the lease of a key while its handler runs; the returned
// function stops it and waits.
func (d *Deduplicator) refresh(key, token string) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.config.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), d.config.Lease/3)
				_, _ = scripts.SettleDedupKey.Run(ctx, d.config.Client, scripts.SettleDedupKeyArgs{Key: key, Token: token, Outcome: scripts.DedupRefresh(d.config.Lease)})
				cancel()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// dedupScope is what keys are shared within: the consumer group of a message
// a redrive Subscriber read in one, else the handler's name (the same in
// every instance of a service).
func dedupScope(msg *message.Message) string {
	if d, ok := redrive.DeliveryOf(msg); ok && d.ConsumerGroup != "" {
		return d.ConsumerGroup
	}
	_, handler := origin(msg)
	return handler
}

// failedAttempts is the attempt count in a message's retry metadata.
func failedAttempts(msg *message.Message) int {
	st, err := ReadRetryState(msg.Metadata)
	if err != nil {
		return 0
	}
	return st.Attempts
}

// retryScheduled tells whether the retry middleware, inside this one,
// failed the message and scheduled its retry (returning nil): it counted an
// attempt and left a next attempt time.
func retryScheduled(msg *message.Message, before int) bool {
	return failedAttempts(msg) > before && msg.Metadata.Get(MetadataNextAttemptAt) != ""
}
