package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/cenkalti/backoff/v4"

	"github.com/redrive-go/redrive"
)

// Poison reasons Retry writes in reason_poisoned: the text starts with one
// of them, then tells the limit and the handler's last error, as in
// "max retries exceeded (5): connection refused". The codes for programs are
// in redrive.MetadataPoisonReason (see PoisonReasonOf).
const (
	ReasonMaxRetries     = "max retries exceeded"
	ReasonMaxElapsedTime = "max elapsed time exceeded"
	ReasonPermanent      = "permanent error"
)

// ErrOtherBroker is returned (and so nacked by the router) for a message that
// a redrive Subscriber did not read when it would have to go through a
// redrive Publisher into Redis: see RetryConfig.OtherBrokersIntoRedis.
var ErrOtherBroker = errors.New("redrive/middleware: message was not read by a redrive Subscriber; RetryConfig.Publisher is a redrive Publisher and OtherBrokersIntoRedis is not set")

// Retry is the retry middleware. Add it to a router (or a handler) with
// AddMiddleware(retry.Middleware), before Recoverer and Timeout so it sees
// their errors.
type Retry struct {
	config RetryConfig
	logger watermill.LoggerAdapter

	// warned holds the handlers already told, once each, how their retries
	// wait in process or where they are published.
	warned sync.Map
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
// router acks the failed delivery; with an in-process delay the handler
// waits and runs again on the same message. Only when the requeue itself
// fails (Redis down) does the handler's error reach the router, which nacks:
// the message is delivered again later, never lost. When the message's
// context ends during an in-process wait, the handler's error is returned
// (nacked) too.
func (r *Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		for inProcess := false; ; inProcess = true {
			delivered := msg.Context()
			produced, err := h(msg)
			if err == nil {
				if inProcess {
					// No attempt is due any more (Deduplicator reads it).
					delete(msg.Metadata, MetadataNextAttemptAt)
				}
				return produced, nil
			}
			if shuttingDown(delivered, msg) {
				// The subscriber or router cancelled the message because it
				// is shutting down: not a failed attempt. The router nacks
				// it, and it comes back with its retries intact.
				return nil, err
			}
			wait, settleErr := r.settle(msg, err)
			if settleErr != nil {
				r.logger.Error("Could not requeue or poison the message; the router nacks it", settleErr,
					watermill.LogFields{"message_uuid": msg.UUID})
				return nil, fmt.Errorf("%w (and requeue failed: %w)", err, settleErr)
			}
			if wait < 0 {
				return nil, nil // settled: scheduled elsewhere or poisoned
			}
			if !sleep(msg.Context(), wait) {
				return nil, fmt.Errorf("%w (in-process retry interrupted: %w)", err, context.Cause(msg.Context()))
			}
		}
	}
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// settle records the failure and then retries or poisons the message. It
// returns how long to wait in process before running the handler again, or
// -1 when the message was settled (requeued elsewhere, or poisoned).
func (r *Retry) settle(msg *message.Message, handlerErr error) (time.Duration, error) {
	now := time.Now()
	ctx := msg.Context()
	topic, handler := origin(msg)
	fields := watermill.LogFields{"message_uuid": msg.UUID, "topic": topic, "handler": handler}
	if orig := msg.Metadata.Get(MetadataOriginalUUID); orig != "" {
		fields["original_uuid"] = orig
	}

	st, err := ReadRetryState(msg.Metadata)
	if err != nil {
		// Metadata someone else mangled: count from here rather than fail.
		r.logger.Info("Ignoring malformed retry metadata", fields.Add(watermill.LogFields{"err": err.Error()}))
		st = RetryState{}
	}
	errText := describeError(handlerErr, r.config.MaxStackLength)
	st.Attempts++
	if st.FirstFailedAt.IsZero() {
		st.FirstFailedAt = now
	}
	st.LastFailedAt = now
	st.LastError = truncate(errText, r.config.MaxErrorLength)
	attempt := Attempt{Number: st.Attempts, FailedAt: now.UTC(), Error: truncate(errText, historyErrorLength)}

	where := r.where(msg)
	code, reason := r.poisonReason(st, handlerErr, now)
	if code == "" {
		attempt.Delay = r.delay(st.Attempts)
		st.NextAttemptAt = now.Add(attempt.Delay)
		if where == DelayInPublisher {
			st.NextAttemptAt = roundUp(st.NextAttemptAt, r.config.DelayPrecision)
			attempt.Delay = st.NextAttemptAt.Sub(now)
		}
	} else {
		st.NextAttemptAt = time.Time{}
	}
	st.History = append(st.History, attempt)
	if len(st.History) > r.config.HistoryLength {
		st.History = st.History[len(st.History)-r.config.HistoryLength:]
	}
	st.write(msg.Metadata)
	// Delay metadata from an earlier published retry must not follow the
	// message into the poison topic (where a redrive Publisher would hold it
	// in a delayed set) or into a retry it does not apply to.
	delete(msg.Metadata, delay.DelayedUntilKey)
	delete(msg.Metadata, delay.DelayedForKey)

	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.config.RequeueTimeout)
	defer cancel()

	if code != "" {
		r.logFailure(handlerErr, errText, fields.Add(watermill.LogFields{"attempt": st.Attempts, "next_delay": "none (poisoned)"}))
		msg.Metadata.Set(wmiddleware.ReasonForPoisonedKey, reason)
		msg.Metadata.Set(redrive.MetadataPoisonReason, string(code))
		msg.Metadata.Set(wmiddleware.PoisonedTopicKey, topic)
		msg.Metadata.Set(wmiddleware.PoisonedHandlerKey, handler)
		msg.Metadata.Set(wmiddleware.PoisonedSubscriberKey, message.SubscriberNameFromCtx(ctx))
		if err := r.poison(opCtx, msg, handler); err != nil {
			return 0, err
		}
		r.logger.Info("Message poisoned", fields.Add(watermill.LogFields{"reason": reason, "reason_code": string(code), "attempts": st.Attempts, "poison_topic": r.config.PoisonTopic}))
		if r.config.OnPoison != nil {
			r.config.OnPoison(PoisonEvent{Message: msg, Topic: topic, Handler: handler, Attempts: st.Attempts, Reason: reason, ReasonCode: code, Err: handlerErr})
		}
		return -1, nil
	}

	r.logFailure(handlerErr, errText, fields.Add(watermill.LogFields{"attempt": st.Attempts, "next_delay": attempt.Delay.String(), "delay_in": r.describeWhere(where)}))
	wait := time.Duration(-1)
	if where == DelayInProcess {
		r.warnInProcess(handler, topic)
		wait = attempt.Delay
	} else if err := r.requeue(opCtx, msg, where, topic, handler, st.NextAttemptAt); err != nil {
		return 0, err
	}
	if r.config.OnRetry != nil {
		r.config.OnRetry(RetryEvent{Message: msg, Topic: topic, Handler: handler, Attempt: st.Attempts, Delay: attempt.Delay, DueAt: st.NextAttemptAt, Err: handlerErr, InProcess: where == DelayInProcess})
	}
	return wait, nil
}

// where decides where a retry of msg waits. A redrive delivery in a consumer
// group returns -1: its group's delayed set.
func (r *Retry) where(msg *message.Message) DelayMode {
	if d, ok := redrive.DeliveryOf(msg); ok {
		if d.ConsumerGroup != "" {
			return -1
		}
		// A fan-out reader: a published retry would reach every instance.
		return DelayInProcess
	}
	return r.config.Delay
}

func (r *Retry) describeWhere(where DelayMode) string {
	switch where {
	case -1:
		return "redrive group delayed set"
	case DelayInProcess:
		return "in process"
	case DelayInPublisher:
		return "publisher"
	}
	return "durable set " + r.config.Durable.Key()
}

// logFailure logs a failed attempt at FailureLogLevel; never the payload.
func (r *Retry) logFailure(handlerErr error, errText string, fields watermill.LogFields) {
	const msg = "Handler failed"
	switch r.config.FailureLogLevel {
	case watermill.ErrorLogLevel:
		r.logger.Error(msg, handlerErr, fields)
		return
	case watermill.TraceLogLevel:
		r.logger.Trace(msg, fields.Add(watermill.LogFields{"err": errText}))
	case watermill.DebugLogLevel:
		r.logger.Debug(msg, fields.Add(watermill.LogFields{"err": errText}))
	default:
		r.logger.Info(msg, fields.Add(watermill.LogFields{"err": errText}))
	}
}

// warnInProcess tells once per handler that its retries wait in process.
func (r *Retry) warnInProcess(handler, topic string) {
	if _, told := r.warned.LoadOrStore("in-process:"+handler, true); told {
		return
	}
	r.logger.Info("Retrying in process: the handler waits each backoff and runs again on the same message; "+
		"meanwhile it reads no other message of a subscriber that delivers one at a time, and a stop during the wait "+
		"nacks the message with its retry count lost. For durable retries read this topic with a redrive Subscriber "+
		"in a consumer group, or set RetryConfig.Delay to DelayInPublisher or DelayDurable",
		watermill.LogFields{"handler": handler, "topic": topic, "max_interval": r.config.MaxInterval.String()})
}

// describeError is the text kept of a handler error: a recovered panic keeps
// its value and at most maxStack bytes of its stack.
func describeError(err error, maxStack int) string {
	var p wmiddleware.RecoveredPanicError
	if !errors.As(err, &p) {
		return err.Error()
	}
	return fmt.Sprintf("panic: %v\n%s", p.V, truncate(p.Stacktrace, maxStack))
}

// poisonReason returns why the message must not be retried, as a code and
// as the text for reason_poisoned, or "" when it is retried. The text ends
// with the handler's error, cut to historyErrorLength, so the poison topic
// tells what failed as Watermill's PoisonQueue does.
func (r *Retry) poisonReason(st RetryState, handlerErr error, now time.Time) (redrive.PoisonReason, string) {
	cause := truncate(handlerErr.Error(), historyErrorLength)
	switch {
	case IsPermanent(handlerErr):
		return redrive.PoisonReasonPermanent, ReasonPermanent + ": " + cause
	case r.config.ShouldRetry != nil && !r.config.ShouldRetry(handlerErr):
		return redrive.PoisonReasonPermanent, ReasonPermanent + " (ShouldRetry): " + cause
	case st.Attempts > r.config.maxRetries():
		return redrive.PoisonReasonMaxRetries, fmt.Sprintf("%s (%d): %s", ReasonMaxRetries, r.config.maxRetries(), cause)
	case r.config.MaxElapsedTime > 0 && now.Sub(st.FirstFailedAt) >= r.config.MaxElapsedTime:
		return redrive.PoisonReasonMaxElapsedTime, fmt.Sprintf("%s (%s): %s", ReasonMaxElapsedTime, r.config.MaxElapsedTime, cause)
	}
	return "", ""
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
// that acks the delivery. Otherwise a copy with a new UUID goes to the
// handler's retry topic, published with delay metadata or held in the
// durable set, and the router acks the delivery afterwards.
func (r *Retry) requeue(ctx context.Context, msg *message.Message, where DelayMode, topic, handler string, dueAt time.Time) error {
	if where == -1 {
		d, _ := redrive.DeliveryOf(msg)
		return d.Requeue(ctx, msg, dueAt)
	}
	if topic == "" || handler == "" {
		return fmt.Errorf("redrive/middleware: cannot requeue message %s: its topic or handler is unknown (not run by a message.Router?)", msg.UUID)
	}
	pub := r.config.Publisher
	if where == DelayDurable {
		pub = r.config.Durable.config.Publisher
	}
	if err := r.checkBroker(msg, handler, pub); err != nil {
		return err
	}
	retry := publishedCopy(msg)
	retry.Metadata.Set(MetadataOriginalTopic, topic)
	retry.Metadata.Set(MetadataOriginalHandler, handler)
	retry.SetContext(ctx)
	retryTopic := RetryTopic(topic, handler)
	if _, told := r.warned.LoadOrStore("published:"+handler, true); !told {
		r.logger.Info("Retries of this handler are published to its retry topic, which must be read by the same handler "+
			"(router.AddOtherBrokerHandler does it; on a message.Router call middleware.AddRetryHandler)",
			watermill.LogFields{"handler": handler, "topic": topic, "retry_topic": retryTopic, "delay": where.String()})
	}
	if where == DelayDurable {
		return r.config.Durable.Schedule(ctx, retryTopic, retry, dueAt)
	}
	delay.Message(retry, delay.Until(dueAt))
	if err := r.config.Publisher.Publish(retryTopic, retry); err != nil {
		return fmt.Errorf("publish retry of %s to %q: %w", msg.UUID, retryTopic, err)
	}
	return nil
}

// publishedCopy copies msg under a new UUID, keeping the first UUID in
// MetadataOriginalUUID, so brokers that drop repeated IDs accept it.
func publishedCopy(msg *message.Message) *message.Message {
	c := msg.Copy()
	c.UUID = watermill.NewUUID()
	if c.Metadata.Get(MetadataOriginalUUID) == "" {
		c.Metadata.Set(MetadataOriginalUUID, msg.UUID)
	}
	return c
}

// checkBroker refuses to send a message another broker delivered into Redis
// through pub, a redrive Publisher, unless OtherBrokersIntoRedis asks for it.
func (r *Retry) checkBroker(msg *message.Message, handler string, pub message.Publisher) error {
	if _, fromRedrive := redrive.DeliveryOf(msg); fromRedrive || r.config.OtherBrokersIntoRedis || !isRedrivePublisher(pub) {
		return nil
	}
	return fmt.Errorf("handler %q (subscriber %s): %w: give this handler its own retry middleware whose Publisher is its broker's publisher, or set OtherBrokersIntoRedis",
		handler, message.SubscriberNameFromCtx(msg.Context()), ErrOtherBroker)
}

// poison moves msg to the poison topic: through its redrive Delivery (which
// acks it in the same step when read in a consumer group), or as a copy
// published through Publisher.
func (r *Retry) poison(ctx context.Context, msg *message.Message, handler string) error {
	if d, ok := redrive.DeliveryOf(msg); ok {
		if d.ConsumerGroup != "" {
			msg.Metadata.Set(redrive.MetadataPoisonedConsumerGroup, d.ConsumerGroup)
		}
		return d.Poison(ctx, msg, r.config.PoisonTopic)
	}
	if err := r.checkBroker(msg, handler, r.config.Publisher); err != nil {
		return err
	}
	poisoned := publishedCopy(msg)
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
