package redrive

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("redrive: publisher closed")

// Publisher is a Watermill message.Publisher over Redis Streams.
//
// A message goes to the stream named by its topic, in watermill-redisstream's
// wire format. A message with Watermill's delay metadata (set by
// components/delay or middleware.DelayOnError) waits in the topic's delayed
// set until due; a redrive Subscriber on the topic moves it into the stream.
//
// Publish sends all its messages in one pipelined round trip, and concurrent
// Publish calls share round trips instead of queueing behind each other.
type Publisher struct {
	config PublisherConfig
	logger watermill.LoggerAdapter

	requests chan *publishRequest

	// closeMu is held for reading by every Publish in progress, so Close
	// waits for them before stopping the pipelines.
	closeMu sync.RWMutex
	closed  bool
	stop    chan struct{}
	pipesWg sync.WaitGroup
}

// NewPublisher creates a Publisher.
func NewPublisher(config PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	p := &Publisher{
		config:   config,
		logger:   logger,
		requests: make(chan *publishRequest, config.Pipelines*4),
		stop:     make(chan struct{}),
	}
	for range config.Pipelines {
		p.pipesWg.Add(1)
		go p.runPipeline()
	}
	return p, nil
}

// outgoing is one message ready to send: an XADD to its stream, or a ZADD to
// its delayed set.
type outgoing struct {
	topic  string
	uuid   string
	fields map[string]interface{}
	maxlen int64

	delayedKey string
	dueAt      time.Time
	member     string
}

type publishRequest struct {
	msgs []outgoing
	done chan error
}

// Publish sends msgs to topic. It returns when Redis has stored all of them,
// or with the first error. A message that cannot be marshalled fails the
// call before anything is sent.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errors.New("redrive: publish: topic is empty")
	}
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrPublisherClosed
	}
	if len(msgs) == 0 {
		return nil
	}

	out, err := p.prepare(topic, msgs)
	if err != nil {
		return err
	}
	// Split very large calls so one pipeline never exceeds MaxPipelineSize;
	// the chunks go out in order, so messages keep the order they were given.
	for start := 0; start < len(out); start += p.config.MaxPipelineSize {
		end := min(start+p.config.MaxPipelineSize, len(out))
		req := &publishRequest{msgs: out[start:end], done: make(chan error, 1)}
		p.requests <- req
		if err := <-req.done; err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) prepare(topic string, msgs []*message.Message) ([]outgoing, error) {
	keys := KeysFor(topic)
	now := time.Now()
	out := make([]outgoing, 0, len(msgs))
	for _, msg := range msgs {
		if err := msg.Context().Err(); err != nil {
			return nil, fmt.Errorf("redrive: publish message %s to %q: %w", msg.UUID, topic, err)
		}
		fields, err := p.config.Marshaller.Marshal(topic, msg)
		if err != nil {
			return nil, fmt.Errorf("redrive: marshal message %s for %q: %w", msg.UUID, topic, err)
		}
		o := outgoing{topic: topic, uuid: msg.UUID, fields: fields, maxlen: p.config.maxlen(topic)}
		due, delayed, err := dueTime(msg.Metadata, now)
		if err != nil {
			return nil, fmt.Errorf("redrive: message %s for %q: bad delay: %w", msg.UUID, topic, err)
		}
		if delayed && due.After(now) {
			_, member, err := encodeDelayedMember(fields)
			if err != nil {
				return nil, fmt.Errorf("redrive: message %s for %q: %w", msg.UUID, topic, err)
			}
			o.delayedKey, o.dueAt, o.member = keys.Delayed, due, member
		}
		out = append(out, o)
	}
	return out, nil
}

// runPipeline sends requests in pipelines: it takes one request, then every
// other request already waiting, up to MaxPipelineSize messages, so the
// round trip is shared by all of them.
func (p *Publisher) runPipeline() {
	defer p.pipesWg.Done()
	for {
		var batch []*publishRequest
		select {
		case req := <-p.requests:
			batch = append(batch, req)
		case <-p.stop:
			return
		}
		size := len(batch[0].msgs)
	collect:
		for size < p.config.MaxPipelineSize {
			select {
			case req := <-p.requests:
				batch = append(batch, req)
				size += len(req.msgs)
			default:
				break collect
			}
		}
		p.send(batch)
	}
}

func (p *Publisher) send(batch []*publishRequest) {
	ctx := context.Background()
	pipe := p.config.Client.Pipeline()
	cmds := make([][]redis.Cmder, len(batch))
	for i, req := range batch {
		for _, o := range req.msgs {
			if o.delayedKey != "" {
				cmds[i] = append(cmds[i], pipe.ZAdd(ctx, o.delayedKey, redis.Z{Score: float64(o.dueAt.UnixMilli()), Member: o.member}))
				continue
			}
			cmds[i] = append(cmds[i], pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: o.topic,
				Values: o.fields,
				MaxLen: o.maxlen,
				Approx: o.maxlen > 0,
			}))
		}
	}
	// Exec's error is the first command's error; each caller gets its own.
	_, _ = pipe.Exec(ctx)
	for i, req := range batch {
		var firstErr error
		for j, cmd := range cmds[i] {
			o := req.msgs[j]
			if err := cmd.Err(); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("redrive: publish message %s to %q: %w", o.uuid, o.topic, err)
			}
			if cmd.Err() == nil && o.delayedKey != "" {
				processWakeups.notify(o.delayedKey, o.dueAt)
			}
		}
		req.done <- firstErr
	}
}

// Close waits for Publish calls in progress and stops the publisher. It is
// idempotent and does not close the Redis client.
func (p *Publisher) Close() error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.stop)
	p.pipesWg.Wait()
	return nil
}
