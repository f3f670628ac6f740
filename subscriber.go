package redrive

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive/internal/redisinfo"
)

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("redrive: subscriber closed")

// Subscriber is a Watermill message.Subscriber over Redis Streams.
//
// With a ConsumerGroup, each message of a topic goes to one subscriber of the
// group and leaves the group's pending list only when acked (at-least-once).
// It reads in batches, keeps up to MaxInFlight messages out at once, acks in
// batches, claims the pending entries of dead consumers, keeps its own slow
// entries from being claimed, moves undecodable entries to a poison stream,
// and moves due delayed messages into the stream. A nacked message is
// delivered again after NackResendSleep without holding up the others.
//
// Without a ConsumerGroup it fans out: every subscriber gets every message.
type Subscriber struct {
	config SubscriberConfig
	logger watermill.LoggerAdapter

	mu            sync.Mutex
	closed        bool
	subscriptions sync.WaitGroup
	closing       chan struct{}
	// wakeups receives the wake-ups of the topics' delayed messages for the
	// movers of every subscription.
	wakeups *wakeupListener

	versionOnce sync.Once
	versionErr  error
}

// NewSubscriber creates a Subscriber. It does no I/O: the server is checked
// at the first Subscribe.
func NewSubscriber(config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Subscriber{
		config:  config,
		logger:  logger,
		closing: make(chan struct{}),
		wakeups: newWakeupListener(config.Client, logger),
	}, nil
}

// Subscribe starts reading topic. The channel is closed when ctx ends or the
// subscriber is closed, after the messages out with handlers were settled
// and their acks sent (bounded by CloseTimeout).
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("redrive: subscribe: topic is empty")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.subscriptions.Add(1)
	s.mu.Unlock()

	sub, err := s.subscribe(ctx, topic)
	if err != nil {
		s.subscriptions.Done()
		return nil, err
	}
	go func() {
		defer s.subscriptions.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		sub.shutdown()
	}()
	return sub.out, nil
}

func (s *Subscriber) subscribe(ctx context.Context, topic string) (*subscription, error) {
	if err := s.checkServerVersion(ctx); err != nil {
		return nil, err
	}
	sub := newSubscription(ctx, &s.config, s.logger, s.wakeups, topic)
	if sub.group != "" {
		if err := sub.createGroups(ctx); err != nil {
			return nil, err
		}
	} else if err := sub.resolveFanOutStart(ctx); err != nil {
		return nil, err
	}
	if err := sub.start(); err != nil {
		return nil, err
	}
	return sub, nil
}

// SubscribeInitialize creates the consumer group of topic (and its stream)
// ahead of the first Subscribe, so messages published before it are kept for
// the group. It implements message.SubscribeInitializer.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if s.config.ConsumerGroup == "" {
		return nil
	}
	ctx := context.Background()
	if err := s.checkServerVersion(ctx); err != nil {
		return err
	}
	return newSubscription(ctx, &s.config, s.logger, s.wakeups, topic).createGroups(ctx)
}

// Close stops every subscription: reading stops and entries read ahead go back
// to the group for other consumers to claim at once. It does not wait for
// messages out with handlers (a reader that stopped reading may never ack
// them): their acks still reach Redis, their contexts stay alive while they
// keep being settled (see CloseTimeout), and each subscription's channel
// closes after them. A read blocked in Redis ends at once: it runs on a
// connection of the subscription's own. It is idempotent and does not close
// the Redis client.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.subscriptions.Wait()
	s.wakeups.close()
	return nil
}

// minServerVersion is the first Redis with XAUTOCLAIM and XPENDING IDLE.
var minServerVersion = [2]int{6, 2}

// checkServerVersion fails clearly on a Redis too old for redrive, instead of
// an endless log of syntax errors. A server that does not answer INFO (some
// embedded test servers) is let through.
func (s *Subscriber) checkServerVersion(ctx context.Context) error {
	s.versionOnce.Do(func() {
		version, err := redisinfo.ServerVersion(ctx, s.config.Client)
		if err != nil {
			s.logger.Debug("Cannot read the Redis server version; not checking it", watermill.LogFields{"err": err.Error()})
			return
		}
		if !version.AtLeast(minServerVersion[0], minServerVersion[1]) {
			s.versionErr = fmt.Errorf("redrive: Redis %s is too old: redrive needs %d.%d or newer (XAUTOCLAIM, XPENDING IDLE)", version, minServerVersion[0], minServerVersion[1])
		}
	})
	return s.versionErr
}
