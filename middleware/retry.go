package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/cenkalti/backoff/v4"

	"github.com/redrive-go/redrive"
)

// Poison reasons Retry writes in reason_poisoned.
const (
	ReasonMaxRetries     = "max retries exceeded"
	ReasonMaxElapsedTime = "max elapsed time exceeded"
	ReasonPermanent      = "permanent error"
)

// Retry is the retry middleware. Add it to a router (or a handler) with
// AddMiddleware(retry.Middleware), before Recoverer and Timeout so it sees
// their errors.
type Retry struct {
	config RetryConfig
	logger watermill.LoggerAdapter
}

// NewRetry creates the middleware.
func NewRetry(config RetryConfig, logger watermill.LoggerAdapter) (*Retry, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Retry{config: config, logger: logger}, nil
}

// Middleware wraps a handler. When the handler fails, the message is
// requeued with a backoff or poisoned, and the handler returns nil so the
// router acks the failed delivery. Only when the requeue itself fails (Redis
// down) does the handler's error reach the router, which nacks: the message
// is delivered again later, never lost.
func (r *Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		delivered := msg.Context()
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		if shuttingDown(delivered, msg) {
			// The subscriber or router cancelled the message because it is
			// shutting down: not a failed attempt. The router nacks it, and
			// it comes back with its retries intact.
			return nil, err
		}
		if settleErr := r.settle(msg, err); settleErr != nil {
			r.logger.Error("Could not requeue or poison the message; the router nacks it", settleErr,
				watermill.LogFields{"message_uuid": msg.UUID})
			return nil, fmt.Errorf("%w (and requeue failed: %v)", err, settleErr)
		}
		return nil, nil
	}
}

func (r *Retry) settle(msg *message.Message, handlerErr error) error {
	now := time.Now()
	ctx := msg.Context()
	topic := message.SubscribeTopicFromCtx(ctx)
	handler := message.HandlerNameFromCtx(ctx)
	fields := watermill.LogFields{"message_uuid": msg.UUID, "topic": topic, "handler": handler}

	st, err := ReadRetryState(msg.Metadata)
	if err != nil {
		// Metadata someone else mangled: count from here rather than fail.
		r.logger.Info("Ignoring malformed retry metadata", fields.Add(watermill.LogFields{"err": err.Error()}))
		st = RetryState{}
	}
	st.Attempts++
	if st.FirstFailedAt.IsZero() {
		st.FirstFailedAt = now
	}
	st.LastFailedAt = now
	st.LastError = truncate(handlerErr.Error(), r.config.MaxErrorLength)
	attempt := Attempt{Number: st.Attempts, FailedAt: now.UTC(), Error: truncate(handlerErr.Error(), historyErrorLength)}

	reason := r.poisonReason(st, handlerErr, now)
	if reason == "" {
		attempt.Delay = r.delay(st.Attempts)
		st.NextAttemptAt = now.Add(attempt.Delay)
	} else {
		st.NextAttemptAt = time.Time{}
	}
	st.History = append(st.History, attempt)
	if len(st.History) > r.config.HistoryLength {
		st.History = st.History[len(st.History)-r.config.HistoryLength:]
	}
	st.write(msg.Metadata)

	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.config.RequeueTimeout)
	defer cancel()

	if reason != "" {
		msg.Metadata.Set(wmiddleware.ReasonForPoisonedKey, reason)
		msg.Metadata.Set(wmiddleware.PoisonedTopicKey, topic)
		msg.Metadata.Set(wmiddleware.PoisonedHandlerKey, handler)
		msg.Metadata.Set(wmiddleware.PoisonedSubscriberKey, message.SubscriberNameFromCtx(ctx))
		if err := r.poison(opCtx, msg); err != nil {
			return err
		}
		r.logger.Info("Message poisoned", fields.Add(watermill.LogFields{"reason": reason, "attempts": st.Attempts}))
		if r.config.OnPoison != nil {
			r.config.OnPoison(PoisonEvent{Message: msg, Topic: topic, Handler: handler, Attempts: st.Attempts, Reason: reason, Err: handlerErr})
		}
		return nil
	}

	if err := r.requeue(opCtx, msg, topic, attempt.Delay, st.NextAttemptAt); err != nil {
		return err
	}
	r.logger.Debug("Retry scheduled", fields.Add(watermill.LogFields{"attempt": st.Attempts, "delay": attempt.Delay.String()}))
	if r.config.OnRetry != nil {
		r.config.OnRetry(RetryEvent{Message: msg, Topic: topic, Handler: handler, Attempt: st.Attempts, Delay: attempt.Delay, DueAt: st.NextAttemptAt, Err: handlerErr})
	}
	return nil
}

// poisonReason returns why the message must not be retried, or "".
func (r *Retry) poisonReason(st RetryState, handlerErr error, now time.Time) string {
	switch {
	case IsPermanent(handlerErr):
		return ReasonPermanent + ": " + truncate(handlerErr.Error(), historyErrorLength)
	case r.config.ShouldRetry != nil && !r.config.ShouldRetry(handlerErr):
		return ReasonPermanent + " (ShouldRetry): " + truncate(handlerErr.Error(), historyErrorLength)
	case st.Attempts > r.config.maxRetries():
		return fmt.Sprintf("%s (%d)", ReasonMaxRetries, r.config.maxRetries())
	case r.config.MaxElapsedTime > 0 && now.Sub(st.FirstFailedAt) >= r.config.MaxElapsedTime:
		return fmt.Sprintf("%s (%s)", ReasonMaxElapsedTime, r.config.MaxElapsedTime)
	}
	return ""
}

// delay is the backoff after failure number attempt, as
// github.com/cenkalti/backoff/v4 computes it.
func (r *Retry) delay(attempt int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     r.config.InitialInterval,
		RandomizationFactor: r.config.RandomizationFactor,
		Multiplier:          r.config.Multiplier,
		MaxInterval:         r.config.MaxInterval,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	var d time.Duration
	for range attempt {
		d = b.NextBackOff()
	}
	return d
}

// requeue schedules the message again. Read by a redrive Subscriber in a
// consumer group, it goes to that group's retry set in the same Lua script
// that acks the delivery. Otherwise it is published back to its topic with
// Watermill's delay metadata, and the router acks the delivery afterwards.
func (r *Retry) requeue(ctx context.Context, msg *message.Message, topic string, d time.Duration, dueAt time.Time) error {
	if delivery, ok := redrive.DeliveryOf(msg); ok && delivery.ConsumerGroup != "" {
		return delivery.Requeue(ctx, msg, dueAt)
	}
	if topic == "" {
		return fmt.Errorf("redrive/middleware: cannot requeue message %s: its topic is unknown (not run by a message.Router?)", msg.UUID)
	}
	retry := msg.Copy()
	delay.Message(retry, delay.Until(dueAt))
	retry.SetContext(ctx)
	if err := r.config.Publisher.Publish(topic, retry); err != nil {
		return fmt.Errorf("publish retry of %s to %q: %w", msg.UUID, topic, err)
	}
	return nil
}

func (r *Retry) poison(ctx context.Context, msg *message.Message) error {
	if delivery, ok := redrive.DeliveryOf(msg); ok && delivery.ConsumerGroup != "" {
		return delivery.Poison(ctx, msg, r.config.PoisonTopic)
	}
	poisoned := msg.Copy()
	poisoned.SetContext(ctx)
	if err := r.config.Publisher.Publish(r.config.PoisonTopic, poisoned); err != nil {
		return fmt.Errorf("publish %s to poison topic %q: %w", msg.UUID, r.config.PoisonTopic, err)
	}
	return nil
}

// shuttingDown tells whether the context the message was delivered with was
// cancelled (not timed out) while it was neither acked nor nacked: its
// subscriber or router is shutting down.
func shuttingDown(delivered context.Context, msg *message.Message) bool {
	if !errors.Is(delivered.Err(), context.Canceled) {
		return false
	}
	select {
	case <-msg.Acked():
		return false
	case <-msg.Nacked():
		return false
	default:
		return true
	}
}
