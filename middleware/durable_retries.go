package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/scripts"
)

// DurableRetries defaults.
const (
	// DefaultDurablePollInterval is how often due retries are looked for:
	// a retry comes back at most about this late.
	DefaultDurablePollInterval = 50 * time.Millisecond
	// DefaultDurableBatchSize is how many due retries one look claims.
	DefaultDurableBatchSize = 100
	// DefaultDurableLease is how long a claimed retry is held by the instance
	// publishing it; one not published by then is published again.
	DefaultDurableLease = 30 * time.Second
	// DefaultDurableName names the sorted set when DurableRetriesConfig.Name
	// is empty.
	DefaultDurableName = "default"
)

// DurableRetriesConfig configures DurableRetries.
type DurableRetriesConfig struct {
	// Client is the Redis that holds the retries. Required; never closed.
	Client redis.UniversalClient
	// Publisher publishes each retry to the broker it came from when it is
	// due: the publisher of the broker the handlers read (NATS, AMQP, …).
	// Required; never closed.
	Publisher message.Publisher
	// Name names the sorted set, redrive:durable-retries:{<Name>}: one per
	// broker. Every instance of a service uses the same name. Default
	// DefaultDurableName.
	Name string
	// PollInterval is how often due retries are looked for. Default
	// DefaultDurablePollInterval.
	PollInterval time.Duration
	// BatchSize is how many due retries one look claims. Default
	// DefaultDurableBatchSize.
	BatchSize int
	// Lease is how long an instance holds a claimed retry while publishing
	// it. Default DefaultDurableLease.
	Lease time.Duration
}

func (c *DurableRetriesConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultDurableName
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultDurablePollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultDurableBatchSize
	}
	if c.Lease == 0 {
		c.Lease = DefaultDurableLease
	}
}

// Validate reports the first invalid field.
func (c *DurableRetriesConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive/middleware: DurableRetriesConfig.Client is nil")
	case c.Publisher == nil:
		return errors.New("redrive/middleware: DurableRetriesConfig.Publisher is nil: set the publisher of the broker the handlers read")
	case c.PollInterval < 0:
		return fmt.Errorf("redrive/middleware: DurableRetriesConfig.PollInterval is %s, must be positive", c.PollInterval)
	case c.BatchSize < 0:
		return fmt.Errorf("redrive/middleware: DurableRetriesConfig.BatchSize is %d, must be positive", c.BatchSize)
	case c.Lease < 0:
		return fmt.Errorf("redrive/middleware: DurableRetriesConfig.Lease is %s, must be positive", c.Lease)
	}
	return nil
}

// DurableRetries holds retries of messages from brokers without delays in a
// Redis sorted set, and publishes each through the broker's own publisher
// when it is due. It is the service behind DelayDurable: one background loop,
// started by NewDurableRetries and stopped by Close. Every instance of a
// service may run one on the same set; a retry is published by one of them
// (at least once: an instance that dies while publishing leaves it to
// another after Lease).
type DurableRetries struct {
	config DurableRetriesConfig
	logger watermill.LoggerAdapter
	key    string

	published chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewDurableRetries creates the service and starts its loop.
func NewDurableRetries(config DurableRetriesConfig, logger watermill.LoggerAdapter) (*DurableRetries, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	d := &DurableRetries{
		config:    config,
		logger:    logger.With(watermill.LogFields{"service": "durable_retries", "name": config.Name}),
		key:       "redrive:durable-retries:{" + config.Name + "}",
		published: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	go d.run()
	return d, nil
}

// Key is the sorted set holding the retries, scored by due time in ms.
func (d *DurableRetries) Key() string { return d.key }

// Published receives a value (without blocking the service, so values may
// merge) after each batch of retries was published. Tests wait on it.
func (d *DurableRetries) Published() <-chan struct{} { return d.published }

// Close stops the loop and waits for it. Retries not yet due stay in Redis
// for the next start. It never closes the client or the publisher, and is
// idempotent.
func (d *DurableRetries) Close() error {
	d.closeOnce.Do(func() { close(d.stop) })
	<-d.done
	return nil
}

// durableMember is a retry in the sorted set.
type durableMember struct {
	Topic    string            `json:"t"`
	UUID     string            `json:"u"`
	Metadata map[string]string `json:"m"`
	Payload  []byte            `json:"p"`
}

// Schedule stores msg, to be published to topic at dueAt.
func (d *DurableRetries) Schedule(ctx context.Context, topic string, msg *message.Message, dueAt time.Time) error {
	member, err := json.Marshal(durableMember{Topic: topic, UUID: msg.UUID, Metadata: msg.Metadata, Payload: msg.Payload})
	if err != nil {
		return fmt.Errorf("encode retry %s: %w", msg.UUID, err)
	}
	if err := d.config.Client.ZAdd(ctx, d.key, redis.Z{Score: float64(scripts.DueScore(dueAt)), Member: member}).Err(); err != nil {
		return fmt.Errorf("hold retry %s in %q: %w", msg.UUID, d.key, err)
	}
	return nil
}

func (d *DurableRetries) run() {
	defer close(d.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		n, err := d.publishDue(ctx)
		if err != nil && ctx.Err() == nil {
			d.logger.Error("Could not publish due retries; trying again", err, nil)
		}
		if n > 0 {
			select {
			case d.published <- struct{}{}:
			default:
			}
		}
		next := d.config.PollInterval
		if n == d.config.BatchSize {
			next = 0 // more may be due
		}
		timer.Reset(next)
	}
}

// publishDue claims the due retries and publishes them, returning how many
// were published.
func (d *DurableRetries) publishDue(ctx context.Context) (int, error) {
	now := time.Now()
	members, err := scripts.ClaimDurableRetries.Run(ctx, d.config.Client,
		scripts.ClaimDurableRetriesArgs{Key: d.key, Now: now, Lease: d.config.Lease, Limit: int64(d.config.BatchSize)})
	if err != nil {
		return 0, fmt.Errorf("claim due retries in %q: %w", d.key, err)
	}
	published := 0
	var errs []error
	for _, member := range members {
		var m durableMember
		if err := json.Unmarshal([]byte(member), &m); err != nil {
			// Not ours to publish, and never will be: keep it out of the way.
			d.logger.Error("Dropping an undecodable durable retry", err, watermill.LogFields{"member_prefix": truncate(member, 64)})
			d.config.Client.ZRem(ctx, d.key, member)
			continue
		}
		msg := message.NewMessage(m.UUID, m.Payload)
		msg.Metadata = m.Metadata
		if msg.Metadata == nil {
			msg.Metadata = message.Metadata{}
		}
		msg.SetContext(ctx)
		if err := d.config.Publisher.Publish(m.Topic, msg); err != nil {
			// Claimed: published again when its lease ends.
			errs = append(errs, fmt.Errorf("publish retry %s to %q: %w", m.UUID, m.Topic, err))
			continue
		}
		if err := d.config.Client.ZRem(ctx, d.key, member).Err(); err != nil {
			// Published; it will be published once more when its lease ends.
			errs = append(errs, fmt.Errorf("remove published retry %s: %w", m.UUID, err))
		}
		published++
	}
	return published, errors.Join(errs...)
}
