package middleware

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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

	// historyErrorLength truncates errors inside the history more than the
	// last error, to keep metadata small.
	historyErrorLength = 200
)

// NoRetries can be set to RetryConfig.MaxRetries to poison a message at its
// first failure.
const NoRetries = -1

// RetryConfig configures Retry.
type RetryConfig struct {
	// Publisher publishes to PoisonTopic, and publishes retries with a delay
	// when the message was not read by a redrive Subscriber. Use a
	// *redrive.Publisher, or any Watermill publisher that honours Watermill's
	// delay metadata. Required.
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
}

// PoisonEvent describes a message sent to the poison topic.
type PoisonEvent struct {
	Message *message.Message
	// Topic and Handler the message failed in ("" when unknown).
	Topic, Handler string
	// Attempts is the number of failures.
	Attempts int
	// Reason is what reason_poisoned says.
	Reason string
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
}

// Validate reports the first invalid field.
func (c *RetryConfig) Validate() error {
	switch {
	case c.Publisher == nil:
		return errors.New("redrive/middleware: RetryConfig.Publisher is nil")
	case c.PoisonTopic == "":
		return errors.New("redrive/middleware: RetryConfig.PoisonTopic is empty: without it a failing message would retry forever")
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
	}
	return nil
}

func (c *RetryConfig) maxRetries() int {
	if c.MaxRetries == NoRetries {
		return 0
	}
	return c.MaxRetries
}
