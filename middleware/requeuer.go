package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/requeuer"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// ClearRetryState removes from md the retry count, failure times, last error
// and poison metadata, so a message sent back from a poison topic gets all
// its retries again. The history is kept.
func ClearRetryState(md message.Metadata) {
	for _, k := range []string{
		MetadataAttempts,
		MetadataFirstFailedAt,
		MetadataLastFailedAt,
		MetadataLastError,
		MetadataNextAttemptAt,
		wmiddleware.ReasonForPoisonedKey,
		redrive.MetadataPoisonReason,
		wmiddleware.PoisonedTopicKey,
		wmiddleware.PoisonedHandlerKey,
		wmiddleware.PoisonedSubscriberKey,
		redrive.MetadataPoisonedSourceStream,
		redrive.MetadataPoisonedSourceID,
		redrive.MetadataPoisonedAt,
		redrive.MetadataPoisonedConsumerGroup,
	} {
		delete(md, k)
	}
}

// RequeueTopic is the GeneratePublishTopic of Watermill's
// components/requeuer for a redrive poison topic: the private retry stream of
// the consumer group whose handler poisoned the message (so a group that had
// succeeded does not get it again), or the original topic when no group is
// recorded (fan-out, or a message another broker delivered).
func RequeueTopic(params requeuer.GeneratePublishTopicParams) (string, error) {
	md := params.Message.Metadata
	topic := md.Get(wmiddleware.PoisonedTopicKey)
	if topic == "" {
		return "", fmt.Errorf("redrive/middleware: message %s has no %s: not poisoned by redrive", params.Message.UUID, wmiddleware.PoisonedTopicKey)
	}
	if group := md.Get(redrive.MetadataPoisonedConsumerGroup); group != "" {
		return redrive.KeysFor(topic).GroupRetry(group), nil
	}
	return topic, nil
}

// RequeuerPublisher is the Publisher to give Watermill's components/requeuer
// reading a redrive poison topic: it sends each message back with its retry
// state cleared (ClearRetryState), then deletes its entry from the poison
// stream, so admin.ListPoisoned no longer counts it and redrive's own
// requeue cannot send it twice. Use it with RequeueTopic and a redrive
// Subscriber in a consumer group of its own on the poison topic; see
// NewRequeuer. Close does not close the wrapped publisher.
type RequeuerPublisher struct {
	client    redis.UniversalClient
	publisher message.Publisher
	logger    watermill.LoggerAdapter
}

// NewRequeuerPublisher wraps publisher, a redrive Publisher on client.
func NewRequeuerPublisher(client redis.UniversalClient, publisher message.Publisher, logger watermill.LoggerAdapter) (*RequeuerPublisher, error) {
	if client == nil || publisher == nil {
		return nil, errors.New("redrive/middleware: NewRequeuerPublisher: client and publisher are required")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &RequeuerPublisher{client: client, publisher: publisher, logger: logger}, nil
}

// Publish sends messages to topic with their retry state cleared, then
// deletes their entries from the poison stream they were read from. A
// failure to delete leaves a copy in the poison stream (never a loss).
func (p *RequeuerPublisher) Publish(topic string, messages ...*message.Message) error {
	for _, msg := range messages {
		out := msg.Copy()
		ClearRetryState(out.Metadata)
		out.SetContext(msg.Context())
		if err := p.publisher.Publish(topic, out); err != nil {
			return fmt.Errorf("redrive/middleware: requeue %s to %q: %w", msg.UUID, topic, err)
		}
		if d, ok := redrive.DeliveryOf(msg); ok {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), DefaultRequeueTimeout)
			err := p.client.XDel(ctx, d.Stream, d.EntryID).Err()
			cancel()
			if err != nil {
				p.logger.Error("Requeued, but could not delete the entry from the poison stream", err,
					watermill.LogFields{"message_uuid": msg.UUID, "stream": d.Stream, "entry_id": d.EntryID})
			}
		}
	}
	return nil
}

// Close does nothing: the wrapped publisher belongs to the caller.
func (p *RequeuerPublisher) Close() error { return nil }

// RequeuerConfig configures NewRequeuer.
type RequeuerConfig struct {
	// Client is the Redis of the poison topic. Required; never closed.
	Client redis.UniversalClient
	// Publisher is a redrive Publisher on Client. Required; never closed.
	Publisher message.Publisher
	// PoisonTopic is the poison topic to send messages back from. Required.
	PoisonTopic string
	// ConsumerGroup is the requeuer's group on PoisonTopic. Default
	// "redrive-requeuer".
	ConsumerGroup string
	// Delay is how long the requeuer waits before sending each message back
	// (Watermill's requeuer.Config.Delay); a message that fails all its
	// retries again comes back after Delay plus its whole backoff, never in
	// a tight loop.
	Delay time.Duration
	// Router is the router the requeuer's handler is added to; nil makes one
	// (requeuer.Config.Router).
	Router *message.Router
}

// NewRequeuer sets up Watermill's components/requeuer on a redrive poison
// topic so that a requeued message gets its retries back, goes to the
// consumer group that failed it, and leaves the poison topic. It returns the
// requeuer (run it with Run, or run Router) and its subscriber, which the
// caller closes after the router stops.
func NewRequeuer(config RequeuerConfig, logger watermill.LoggerAdapter) (*requeuer.Requeuer, *redrive.Subscriber, error) {
	if config.Client == nil || config.Publisher == nil || config.PoisonTopic == "" {
		return nil, nil, errors.New("redrive/middleware: RequeuerConfig needs Client, Publisher and PoisonTopic")
	}
	if config.ConsumerGroup == "" {
		config.ConsumerGroup = "redrive-requeuer"
	}
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: config.Client, ConsumerGroup: config.ConsumerGroup}, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("redrive/middleware: requeuer subscriber: %w", err)
	}
	pub, err := NewRequeuerPublisher(config.Client, config.Publisher, logger)
	if err != nil {
		return nil, nil, err
	}
	rq, err := requeuer.NewRequeuer(requeuer.Config{
		Subscriber:           sub,
		SubscribeTopic:       config.PoisonTopic,
		Publisher:            pub,
		GeneratePublishTopic: RequeueTopic,
		Delay:                config.Delay,
		Router:               config.Router,
	}, logger)
	if err != nil {
		_ = sub.Close()
		return nil, nil, fmt.Errorf("redrive/middleware: requeuer: %w", err)
	}
	return rq, sub, nil
}
