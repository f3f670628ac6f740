package redrive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/errorbackoff"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/startstop"
	"github.com/redrive-go/redrive/internal/testsignal"
)

const (
	// moverErrorBackoff is the first pause after a failed move; it doubles
	// up to moverMaxErrorBackoff.
	moverErrorBackoff    = 50 * time.Millisecond
	moverMaxErrorBackoff = 5 * time.Second
)

// DelayedMoverConfig configures a DelayedMover.
type DelayedMoverConfig struct {
	// Client is the Redis client. Required.
	Client redis.UniversalClient
	// Delayed is the sorted set of delayed messages, such as
	// KeysFor(topic).Delayed. Required.
	Delayed string
	// Stream is the stream due messages go to, such as KeysFor(topic).Stream.
	// It must hash to the same Redis Cluster slot as Delayed. Required.
	Stream string
	// Topic is the topic Delayed belongs to (Delayed is its delayed set, or
	// one of its groups' retry sets). When set, the mover listens on the
	// topic's wake-up channel (Redis Pub/Sub), so a message scheduled by
	// another process wakes it at its due time, and announces there the next
	// due time it knows of when it stops, so another process's mover takes
	// over. Without it, PollInterval bounds how late a message scheduled by
	// another process can be: set a short one.
	Topic string
	// PollInterval is the longest the mover sleeps: a safety net for
	// wake-ups that were lost. Default DefaultDelayedPollInterval.
	PollInterval time.Duration
	// BatchSize is the most messages moved per call. Default
	// DefaultDelayedBatchSize.
	BatchSize int64
	// Maxlen caps Stream (XADD MAXLEN ~ n). 0 means no cap.
	Maxlen int64
}

func (c *DelayedMoverConfig) setDefaults() {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultDelayedPollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultDelayedBatchSize
	}
}

// Validate reports the first invalid field.
func (c *DelayedMoverConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive: DelayedMoverConfig.Client is nil")
	case c.Delayed == "":
		return errors.New("redrive: DelayedMoverConfig.Delayed is empty")
	case c.Stream == "":
		return errors.New("redrive: DelayedMoverConfig.Stream is empty")
	case c.PollInterval < 0:
		return fmt.Errorf("redrive: DelayedMoverConfig.PollInterval is %s, must be positive", c.PollInterval)
	case c.BatchSize < 1:
		return fmt.Errorf("redrive: DelayedMoverConfig.BatchSize is %d, must be at least 1", c.BatchSize)
	case c.Maxlen < 0:
		return fmt.Errorf("redrive: DelayedMoverConfig.Maxlen is %d, must be 0 (no cap) or more", c.Maxlen)
	}
	if !redisinfo.SameSlot(c.Client, c.Delayed, c.Stream) {
		return fmt.Errorf("redrive: DelayedMoverConfig: Delayed %q and Stream %q are in different cluster slots", c.Delayed, c.Stream)
	}
	return nil
}

// DelayedMover is the service that moves due delayed messages from a sorted
// set into their stream. It sleeps until the next due time and wakes early
// when this process, or with Topic set any process, schedules an earlier
// message; it also polls every PollInterval, in case a wake-up was lost. Any
// number of movers may run on the same set, in one process or many: each
// message enters the stream exactly once.
//
// Subscribers run movers for their topic by themselves; run one directly when
// no redrive subscriber reads the stream.
type DelayedMover struct {
	base startstop.Base

	config DelayedMoverConfig
	logger watermill.LoggerAdapter
	// listensElsewhere is set when a Subscriber's wake-up listener serves
	// the mover, which then needs no listener of its own; ownWakeups is the
	// mover's own listener otherwise (with Topic set).
	listensElsewhere bool
	ownWakeups       *wakeupListener

	// testSignals let tests wait on the mover's work; the tests in tests/
	// reach them through testsignal.DelayedMoverOf.
	testSignals testsignal.DelayedMoverSignals
}

func init() {
	testsignal.DelayedMoverOf = func(mover any) *testsignal.DelayedMoverSignals {
		return &mover.(*DelayedMover).testSignals
	}
}

// NewDelayedMover creates a mover. Start runs it.
func NewDelayedMover(config DelayedMoverConfig, logger watermill.LoggerAdapter) (*DelayedMover, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &DelayedMover{
		config: config,
		logger: logger.With(watermill.LogFields{"service": "delayed_mover", "delayed": config.Delayed, "stream": config.Stream}),
	}, nil
}

// Stop stops the mover and waits until its loop has returned. It may be
// called more than once, and does nothing when the mover is not running.
func (m *DelayedMover) Stop() {
	m.base.Stop()
}

// Start runs the mover until ctx ends or Stop is called.
func (m *DelayedMover) Start(ctx context.Context) error {
	ctx, shouldStart, stopped := m.base.StartInit(ctx)
	if !shouldStart {
		return nil
	}
	wake := processWakeups.listen(m.config.Delayed)
	var own *wakeupListener
	if m.config.Topic != "" && !m.listensElsewhere {
		own = newWakeupListener(m.config.Client, m.logger)
		own.add(m.config.Topic, []string{m.config.Delayed})
		m.ownWakeups = own
	}
	go func() {
		defer close(stopped)
		defer processWakeups.forget(m.config.Delayed, wake)
		if own != nil {
			defer own.close()
		}
		next := m.run(ctx, wake)
		m.handOver(next)
	}()
	return nil
}

// handOverTimeout bounds the wake-up a stopping mover sends.
const handOverTimeout = 2 * time.Second

// handOver tells the movers of other processes, when this one stops, that a
// message waits until next (zero: none known), so the one that moves it is
// not asleep for PollInterval.
func (m *DelayedMover) handOver(next time.Time) {
	if next.IsZero() || m.config.Topic == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	if err := announceWakeup(ctx, m.config.Client, m.config.Topic, m.config.Delayed, next).Err(); err != nil {
		m.logger.Debug("Could not hand the next due time over to other processes' movers", watermill.LogFields{"err": err.Error()})
	}
}

// run moves due messages until ctx ends, and returns the earliest due time
// it knows of then (zero when none).
func (m *DelayedMover) run(ctx context.Context, wake chan time.Time) (nextDue time.Time) {
	pauses := errorbackoff.New(moverErrorBackoff, moverMaxErrorBackoff)
	failures := newErrorLog(m.logger, "Moving delayed messages failed")
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		moved, next, err := m.MoveDue(ctx, time.Now())
		if err == nil {
			nextDue = next
		}
		m.testSignals.Polled.Signal(struct{}{})
		if moved > 0 {
			m.testSignals.Moved.Signal(moved)
		}
		var sleep time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nextDue
			}
			failures.failed(err)
			sleep = pauses.Failed()
		case int64(moved) == m.config.BatchSize:
			failures.succeeded()
			pauses.Succeeded() // more are due right now
		default:
			failures.succeeded()
			pauses.Succeeded()
			sleep = m.config.PollInterval
			if !next.IsZero() {
				sleep = min(sleep, time.Until(next))
			}
		}
		var awake bool
		nextDue, awake = m.sleep(ctx, wake, timer, max(sleep, 0), nextDue)
		if !awake {
			return nextDue
		}
	}
}

// sleep waits for d, or less when a wake-up announces a message due
// earlier. It returns the earliest due time known (nextDue, or an earlier
// one announced), and false when ctx ends.
func (m *DelayedMover) sleep(ctx context.Context, wake chan time.Time, timer *time.Timer, d time.Duration, nextDue time.Time) (time.Time, bool) {
	wakeAt := time.Now().Add(d)
	timer.Reset(d)
	for {
		select {
		case <-ctx.Done():
			return nextDue, false
		case <-timer.C:
			return nextDue, true
		case due := <-wake:
			if nextDue.IsZero() || due.Before(nextDue) {
				nextDue = due
			}
			if due.Before(wakeAt) {
				wakeAt = due
				timer.Reset(max(time.Until(due), 0))
			}
		}
	}
}

// MoveDue moves messages due at now into the stream, at most BatchSize. It
// returns how many moved and when the next waiting message is due (zero when
// none waits). Tests and tools call it directly; the running service calls it
// in its loop.
func (m *DelayedMover) MoveDue(ctx context.Context, now time.Time) (moved int, next time.Time, err error) {
	return moveDue(ctx, m.config.Client, m.config.Delayed, m.config.Stream, now, m.config.BatchSize, m.config.Maxlen)
}

func moveDue(ctx context.Context, client redis.Scripter, delayed, stream string, now time.Time, batch, maxlen int64) (int, time.Time, error) {
	res, err := scripts.MoveDue.Run(ctx, client, scripts.MoveDueArgs{Delayed: delayed, Stream: stream, Now: now, Limit: batch, Maxlen: maxlen})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("move due messages from %q to %q: %w", delayed, stream, err)
	}
	return int(res.Moved), res.Next, nil
}
