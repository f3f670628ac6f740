package middleware

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
)

// Retry defaults.
const (
	// DefaultMaxRetries is how many times a failed message is retried before
	// it is poisoned.
	DefaultMaxRetries = 5
	// DefaultInitialInterval is the delay before the first retry.
	DefaultInitialInterval = time.Second
	// DefaultMaxInterval caps the delay between retries.
	DefaultMaxInterval = time.Minute
	// DefaultMultiplier grows the delay after each retry.
	DefaultMultiplier = 2.0
	// DefaultMaxErrorLength truncates errors stored in metadata.
	DefaultMaxErrorLength = 1024
	// DefaultHistoryLength is how many attempts MetadataHistory keeps.
	DefaultHistoryLength = 10
	// DefaultRequeueTimeout bounds the Redis call that schedules a retry.
	DefaultRequeueTimeout = 10 * time.Second
	// DefaultDelayPrecision is the precision DelayInPublisher rounds due
	// times up to: watermill-sql's delayed Pub/Sub keeps whole seconds.
	DefaultDelayPrecision = time.Second
	// DefaultMaxStackLength bounds the stack trace of a recovered panic kept
	// in MetadataLastError.
	DefaultMaxStackLength = 512

	// historyErrorLength truncates errors inside the history more than the
	// last error, to keep metadata small.
	historyErrorLength = 200
)

// NoRetries can be set to RetryConfig.MaxRetries to poison a message at its
// first failure.
const NoRetries = -1

// RetryConfig configures Retry.
type RetryConfig struct {
	// Publisher publishes to the broker the handler reads: poisoned messages
	// (except those a redrive Subscriber in a consumer group read, which its
	// Delivery moves itself) and, with DelayInPublisher, retries. Required.
	// Messages not read by a redrive Subscriber are never published through
	// a *redrive.Publisher unless OtherBrokersIntoRedis is set.
	Publisher message.Publisher
	// PoisonTopic receives messages whose retries ran out. Required: without
	// it a failing message would loop forever.
	PoisonTopic string

	// MaxRetries is how many times a message is retried after its first
	// failure. Default DefaultMaxRetries; NoRetries poisons at once.
	MaxRetries int
	// InitialInterval is the delay before the first retry. Default
	// DefaultInitialInterval.
	InitialInterval time.Duration
	// MaxInterval caps the delay. Default DefaultMaxInterval.
	MaxInterval time.Duration
	// Multiplier grows the delay after each retry. Default DefaultMultiplier.
	Multiplier float64
	// RandomizationFactor spreads each delay randomly by ± this fraction, so
	// messages that failed together do not come back together. 0 (the
	// default, as in Watermill's Retry) means exact delays; 0.5 is common.
	RandomizationFactor float64
	// MaxElapsedTime poisons a message once this long has passed since its
	// first failure, whatever MaxRetries says. 0 means no limit.
	MaxElapsedTime time.Duration

	// Delay says where a retry waits when its message was not read by a
	// redrive Subscriber in a consumer group (those always wait in the
	// group's delayed set in Redis). Default DelayInProcess, right on every
	// broker. See DelayMode.
	Delay DelayMode
	// DelayPrecision is, with DelayInPublisher, the precision of the broker's
	// delays: due times are rounded up to a multiple of it, so a retry never
	// comes back early. Default DefaultDelayPrecision.
	DelayPrecision time.Duration
	// Durable holds the retries with DelayDurable. Required with it.
	Durable *DurableRetries
	// OtherBrokersIntoRedis lets messages that a redrive Subscriber did not
	// read be poisoned (and, with DelayInPublisher, retried) through a
	// *redrive.Publisher into Redis. Without it such a message is retried in
	// process and, when its retries run out, nacked with an error naming this
	// field: it stays in its own broker.
	OtherBrokersIntoRedis bool

	// ShouldRetry decides whether an error is worth retrying; false poisons
	// the message at once. Default: every error except those marked with
	// Permanent.
	ShouldRetry func(err error) bool
	// OnRetry is called after a retry was scheduled.
	OnRetry func(RetryEvent)
	// OnPoison is called after a message was sent to PoisonTopic.
	OnPoison func(PoisonEvent)

	// MaxErrorLength truncates the error stored in metadata. Default
	// DefaultMaxErrorLength.
	MaxErrorLength int
	// HistoryLength is how many attempts MetadataHistory keeps. Default
	// DefaultHistoryLength.
	HistoryLength int
	// RequeueTimeout bounds the Redis call that schedules a retry or poisons
	// a message. Default DefaultRequeueTimeout.
	RequeueTimeout time.Duration
	// MaxStackLength bounds the stack trace of a panic (recovered by
	// Watermill's Recoverer) kept in MetadataLastError and in the log.
	// Default DefaultMaxStackLength.
	MaxStackLength int
	// FailureLogLevel is the level each failed attempt is logged at (handler,
	// topic, UUID, attempt, next delay, error; never the payload). Default
	// watermill.InfoLogLevel.
	FailureLogLevel watermill.LogLevel
}

// RetryEvent describes a scheduled retry.
type RetryEvent struct {
	Message *message.Message
	// Topic and Handler the message failed in ("" when unknown).
	Topic, Handler string
	// Attempt is the number of failures so far.
	Attempt int
	// Delay and DueAt tell when the message comes back.
	Delay time.Duration
	DueAt time.Time
	// Err is the handler's error.
	Err error
	// InProcess is true when the handler waits Delay in process (after
	// OnRetry returns) and runs again; false when the retry was scheduled in
	// Redis or published and the delivery is acked.
	InProcess bool
}

// PoisonEvent describes a message sent to the poison topic.
type PoisonEvent struct {
	Message *message.Message
	// Topic and Handler the message failed in ("" when unknown).
	Topic, Handler string
	// Attempts is the number of failures.
	Attempts int
	// Reason is what reason_poisoned says, for a person: why, and the
	// handler's last error.
	Reason string
	// ReasonCode is the same reason for programs (metrics, alerts):
	// redrive.PoisonReasonMaxRetries, PoisonReasonMaxElapsedTime or
	// PoisonReasonPermanent. It is also in the message's
	// redrive.MetadataPoisonReason.
	ReasonCode redrive.PoisonReason
	// Err is the handler's last error.
	Err error
}

func (c *RetryConfig) setDefaults() {
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.InitialInterval == 0 {
		c.InitialInterval = DefaultInitialInterval
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = DefaultMaxInterval
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultMultiplier
	}
	if c.MaxErrorLength == 0 {
		c.MaxErrorLength = DefaultMaxErrorLength
	}
	if c.HistoryLength == 0 {
		c.HistoryLength = DefaultHistoryLength
	}
	if c.RequeueTimeout == 0 {
		c.RequeueTimeout = DefaultRequeueTimeout
	}
	if c.DelayPrecision == 0 {
		c.DelayPrecision = DefaultDelayPrecision
	}
	if c.MaxStackLength == 0 {
		c.MaxStackLength = DefaultMaxStackLength
	}
	if c.FailureLogLevel == 0 {
		c.FailureLogLevel = watermill.InfoLogLevel
	}
}

// Validate reports the first invalid field.
func (c *RetryConfig) Validate() error {
	switch {
	case c.Publisher == nil:
		return errors.New("redrive/middleware: RetryConfig.Publisher is nil")
	case c.PoisonTopic == "":
		return errors.New("redrive/middleware: RetryConfig.PoisonTopic is empty: without it a failing message would retry forever")
	}
	return c.validatePolicy()
}

// ValidatePolicy reports the first invalid field of the retry policy alone,
// its unset fields taking their defaults: every field but Publisher and
// PoisonTopic, for a policy whose Publisher and PoisonTopic are filled in
// later, as the router package does per handler. NewRetry still checks the
// whole config.
func (c RetryConfig) ValidatePolicy() error {
	c.setDefaults()
	return c.validatePolicy()
}

// validatePolicy is Validate without the Publisher and PoisonTopic checks.
func (c *RetryConfig) validatePolicy() error {
	switch {
	case c.MaxRetries < NoRetries:
		return fmt.Errorf("redrive/middleware: RetryConfig.MaxRetries is %d, must be positive or NoRetries", c.MaxRetries)
	case c.InitialInterval < 0:
		return fmt.Errorf("redrive/middleware: RetryConfig.InitialInterval is %s, must be positive", c.InitialInterval)
	case c.MaxInterval < c.InitialInterval:
		return fmt.Errorf("redrive/middleware: RetryConfig.MaxInterval (%s) is less than InitialInterval (%s)", c.MaxInterval, c.InitialInterval)
	case c.Multiplier < 1:
		return fmt.Errorf("redrive/middleware: RetryConfig.Multiplier is %v, must be at least 1", c.Multiplier)
	case c.RandomizationFactor < 0 || c.RandomizationFactor >= 1:
		return fmt.Errorf("redrive/middleware: RetryConfig.RandomizationFactor is %v, must be in [0, 1)", c.RandomizationFactor)
	case c.MaxElapsedTime < 0:
		return fmt.Errorf("redrive/middleware: RetryConfig.MaxElapsedTime is %s, must be 0 (no limit) or positive", c.MaxElapsedTime)
	case c.MaxErrorLength < 1:
		return fmt.Errorf("redrive/middleware: RetryConfig.MaxErrorLength is %d, must be at least 1", c.MaxErrorLength)
	case c.HistoryLength < 1:
		return fmt.Errorf("redrive/middleware: RetryConfig.HistoryLength is %d, must be at least 1", c.HistoryLength)
	case c.RequeueTimeout < 0:
		return fmt.Errorf("redrive/middleware: RetryConfig.RequeueTimeout is %s, must be positive", c.RequeueTimeout)
	case c.Delay != DelayInProcess && c.Delay != DelayInPublisher && c.Delay != DelayDurable:
		return fmt.Errorf("redrive/middleware: RetryConfig.Delay is %d, not a DelayMode", c.Delay)
	case c.Delay == DelayDurable && c.Durable == nil:
		return errors.New("redrive/middleware: RetryConfig.Delay is DelayDurable but RetryConfig.Durable is nil: create one with NewDurableRetries (your Redis client and the broker's publisher)")
	case c.Delay != DelayDurable && c.Durable != nil:
		return errors.New("redrive/middleware: RetryConfig.Durable is set but RetryConfig.Delay is not DelayDurable: set Delay to DelayDurable to use it")
	case c.Delay == DelayInPublisher && isRedrivePublisher(c.Publisher) && !c.OtherBrokersIntoRedis:
		return errors.New("redrive/middleware: RetryConfig.Delay is DelayInPublisher with a redrive Publisher: messages read by redrive Subscribers in a consumer group already wait in Redis; for messages of other brokers set OtherBrokersIntoRedis to send their retries into Redis, or use DelayDurable with that broker's publisher")
	case c.DelayPrecision < 0:
		return fmt.Errorf("redrive/middleware: RetryConfig.DelayPrecision is %s, must be positive", c.DelayPrecision)
	case c.MaxStackLength < 1:
		return fmt.Errorf("redrive/middleware: RetryConfig.MaxStackLength is %d, must be at least 1", c.MaxStackLength)
	case c.FailureLogLevel > watermill.ErrorLogLevel:
		return fmt.Errorf("redrive/middleware: RetryConfig.FailureLogLevel is %d, not a watermill.LogLevel", c.FailureLogLevel)
	}
	return nil
}

func (c *RetryConfig) maxRetries() int {
	if c.MaxRetries == NoRetries {
		return 0
	}
	return c.MaxRetries
}

func isRedrivePublisher(p message.Publisher) bool {
	_, ok := p.(*redrive.Publisher)
	return ok
}
