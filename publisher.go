package redrive

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/entryfields"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("redrive: publisher closed")

// ErrNotReplicated is wrapped by the error Publish returns when fewer than
// PublisherConfig.WaitReplicas replicas acknowledged the writes within
// WaitTimeout. The messages were stored on the master.
var ErrNotReplicated = errors.New("redrive: writes not acknowledged by enough replicas")

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

	// queue holds requests waiting for a round trip; active counts the
	// round-trip slots in use (at most Pipelines), each held by a caller
	// that sends for the queue. Both are guarded by mu.
	mu     sync.Mutex
	queue  []*publishRequest
	active int
	// callers counts Publish calls in progress, and preparing those of them
	// still marshalling their messages, who will queue in a moment.
	callers   atomic.Int32
	preparing atomic.Int32

	// closeMu is held for reading by every Publish in progress, senders
	// included, so Close waits for them.
	closeMu sync.RWMutex
	closed  bool

	// wakeupFailures logs failed wake-ups of delayed messages (their
	// messages are stored: the movers' polls find them).
	wakeupFailures *syncErrorLog
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
	return &Publisher{
		config:         config,
		logger:         logger,
		wakeupFailures: newSyncErrorLog(logger, "Announcing delayed messages to the movers of other processes failed; they find them at their next DelayedPollInterval"),
	}, nil
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

// key is the key the message is written to: its stream, or its delayed set.
func (o outgoing) key() string {
	if o.delayedKey != "" {
		return o.delayedKey
	}
	return o.topic
}

// write queues or sends the command that stores the message on c (a client
// or a pipeline).
func (o outgoing) write(ctx context.Context, c redis.Cmdable) redis.Cmder {
	if o.delayedKey != "" {
		return c.ZAdd(ctx, o.delayedKey, redis.Z{Score: float64(dueScore(o.dueAt)), Member: o.member})
	}
	return c.XAdd(ctx, &redis.XAddArgs{
		Stream: o.topic,
		Values: entryfields.AppendPairs(nil, o.fields),
		MaxLen: o.maxlen,
		Approx: o.maxlen > 0,
	})
}

// announce wakes this process's movers of a delayed message once it is
// stored, so it is moved on time; other processes' movers learn of it from
// the PUBLISH that follows its ZADD (see sendPipeline).
func (o outgoing) announce() {
	if o.delayedKey != "" {
		processWakeups.notify(o.delayedKey, o.dueAt)
	}
}

type publishRequest struct {
	msgs []outgoing
	// done receives the request's answer, and before it errTakeOver when
	// the caller is to send for the queue. The two never block each other.
	done chan error
	// taken is set once a round trip carries the request, and sender once
	// a round-trip slot has been handed to its caller; both under
	// Publisher.mu.
	taken  bool
	sender bool
}

// errTakeOver tells a waiting caller that a round-trip slot is now its own.
var errTakeOver = errors.New("redrive: take over the round-trip slot")

// maxJoinWaits bounds how many scheduler turns a sender gives callers that
// are about to queue, so they can share its round trip.
const maxJoinWaits = 4

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
	p.callers.Add(1)
	defer p.callers.Add(-1)

	p.preparing.Add(1)
	out, err := p.prepare(topic, msgs)
	p.preparing.Add(-1)
	if err != nil {
		return err
	}
	// Split very large calls so one pipeline never exceeds MaxPipelineSize;
	// the chunks go out in order, so messages keep the order they were given.
	for start := 0; start < len(out); start += p.config.MaxPipelineSize {
		end := min(start+p.config.MaxPipelineSize, len(out))
		req := &publishRequest{msgs: out[start:end], done: make(chan error, 2)}
		if err := p.submit(req); err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) prepare(topic string, msgs []*message.Message) ([]outgoing, error) {
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
			o.delayedKey, o.dueAt, o.member = KeysFor(topic).Delayed, due, member
		}
		out = append(out, o)
	}
	return out, nil
}

// submit queues req and waits for its answer. When fewer than Pipelines
// round trips are in flight, the caller sends on its own goroutine: a lone
// caller pays no hand-off to another goroutine. Otherwise the request waits
// for the next round trip of a caller that is sending, so concurrent callers
// share round trips instead of queueing behind each other.
func (p *Publisher) submit(req *publishRequest) error {
	p.mu.Lock()
	p.queue = append(p.queue, req)
	if p.active < p.config.Pipelines {
		p.active++
		req.sender = true
	} else {
		p.mu.Unlock()
		if err := <-req.done; err != errTakeOver {
			return err
		}
		p.mu.Lock()
	}
	p.serve(req)
	return <-req.done
}

// serve sends queued requests, up to MaxPipelineSize messages per round
// trip, until own went out. Its caller then returns, and the round-trip slot
// passes to a caller still waiting, who is woken anyway and so costs no
// extra goroutine. It is called with mu held and releases it.
func (p *Publisher) serve(own *publishRequest) {
	for !own.taken {
		p.awaitJoiners()
		if own.taken {
			break // another sender took it while this one waited
		}
		n, size := 0, 0
		for n < len(p.queue) && size < p.config.MaxPipelineSize {
			p.queue[n].taken = true
			size += len(p.queue[n].msgs)
			n++
		}
		batch := p.queue[:n:n]
		p.queue = p.queue[n:]
		p.mu.Unlock()
		p.send(batch)
		p.mu.Lock()
	}
	p.handOver()
	p.mu.Unlock()
}

// awaitJoiners gives callers that are about to queue a few scheduler turns
// to do so, as long as the queue keeps growing, so that the round trip
// carries them too: callers answered by the last round trip come straight
// back with their next message. It is called and returns with mu held.
func (p *Publisher) awaitJoiners() {
	if p.callers.Load() == 1 {
		return // a lone caller: nobody to wait for
	}
	for range maxJoinWaits {
		queued := len(p.queue)
		p.mu.Unlock()
		runtime.Gosched()
		p.mu.Lock()
		if len(p.queue) == queued && p.preparing.Load() == 0 {
			return
		}
	}
}

// handOver gives the caller's round-trip slot to the first queued caller
// without one, or frees it. It is called with mu held.
func (p *Publisher) handOver() {
	for _, req := range p.queue {
		if !req.sender {
			req.sender = true
			req.done <- errTakeOver
			return
		}
	}
	p.active--
}

func (p *Publisher) send(batch []*publishRequest) {
	if len(batch) == 1 && len(batch[0].msgs) == 1 && p.config.WaitReplicas == 0 && batch[0].msgs[0].delayedKey == "" {
		p.sendOne(batch[0])
		return
	}
	if cc, ok := p.config.Client.(*redis.ClusterClient); ok && p.config.WaitReplicas > 0 {
		p.sendPerMaster(cc, batch)
		return
	}
	p.sendPipeline(p.config.Client, batch)
}

// sendPerMaster sends batch to a cluster with WAIT. A cluster pipeline is
// split by node behind the scenes, so a WAIT in it would run on one node and,
// after a redirect, on another connection than the writes: each master gets
// its own pipeline ending in WAIT instead. The messages of one request share
// a topic, hence a slot and a master.
func (p *Publisher) sendPerMaster(cc *redis.ClusterClient, batch []*publishRequest) {
	ctx := context.Background()
	byMaster := map[*redis.Client][]*publishRequest{}
	for _, req := range batch {
		o := req.msgs[0]
		master, err := cc.MasterForKey(ctx, o.key())
		if err != nil {
			req.done <- fmt.Errorf("redrive: publish %d messages to %q: find the master: %w", len(req.msgs), o.topic, err)
			continue
		}
		byMaster[master] = append(byMaster[master], req)
	}
	var wg sync.WaitGroup
	for master, reqs := range byMaster {
		wg.Go(func() {
			if failed := p.sendPipeline(master, reqs); failed {
				// A MOVED reply or a dead master, perhaps: the slot map may
				// be stale, and only the cluster client can follow. Reload
				// it (in the background) for the caller's next attempt.
				cc.ReloadState(ctx)
			}
		})
	}
	wg.Wait()
}

// sendOne sends a lone message as a plain command: a pipeline's bookkeeping
// is measurable against one round trip.
func (p *Publisher) sendOne(req *publishRequest) {
	ctx := context.Background()
	o := req.msgs[0]
	if err := o.write(ctx, p.config.Client).Err(); err != nil {
		req.done <- fmt.Errorf("redrive: publish message %s to %q: %w", o.uuid, o.topic, err)
		return
	}
	o.announce()
	req.done <- nil
}

// sendPipeline sends batch in one pipeline, ending with WAIT when
// WaitReplicas is set, answers each request and reports whether a command
// failed (a WAIT that counted too few replicas did not fail).
func (p *Publisher) sendPipeline(client interface{ Pipeline() redis.Pipeliner }, batch []*publishRequest) (failed bool) {
	ctx := context.Background()
	pipe := client.Pipeline()
	cmds := make([][]redis.Cmder, len(batch))
	// earliest is the first due time per delayed set of the batch: one
	// wake-up each tells the movers of every process.
	var earliest map[string]outgoing
	for i, req := range batch {
		for _, o := range req.msgs {
			cmds[i] = append(cmds[i], o.write(ctx, pipe))
			if o.delayedKey == "" {
				continue
			}
			if first, seen := earliest[o.delayedKey]; !seen || o.dueAt.Before(first.dueAt) {
				if earliest == nil {
					earliest = map[string]outgoing{}
				}
				earliest[o.delayedKey] = o
			}
		}
	}
	wakeups := make([]*redis.IntCmd, 0, len(earliest))
	for _, o := range earliest {
		wakeups = append(wakeups, announceWakeup(ctx, pipe, o.topic, o.delayedKey, o.dueAt))
	}
	var wait *redis.Cmd
	if p.config.WaitReplicas > 0 {
		// WAIT counts the replicas that have every write made so far on
		// this connection, which the pipeline keeps for all its commands.
		wait = pipe.Do(ctx, "wait", p.config.WaitReplicas, p.config.WaitTimeout.Milliseconds())
	}
	// Exec's error is the first command's error; each caller gets its own.
	// But when every retry fails to connect, go-redis (v9.17) returns the
	// error from Exec only and leaves the commands without reply or error:
	// such a command was not written, and must not pass for written.
	_, execErr := pipe.Exec(ctx)
	if execErr == nil {
		execErr = errNoReply
	}
	for _, w := range wakeups {
		if err := w.Err(); err != nil {
			p.wakeupFailures.failed(err)
		} else {
			p.wakeupFailures.succeeded()
		}
	}
	waitErr := p.waitError(wait, execErr)
	failed = waitErr != nil && !errors.Is(waitErr, ErrNotReplicated)
	for i, req := range batch {
		var firstErr error
		for j, cmd := range cmds[i] {
			o := req.msgs[j]
			err := cmd.Err()
			if err == nil && !replied(cmd) {
				err = execErr
			}
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("redrive: publish message %s to %q: %w", o.uuid, o.topic, err)
				failed = true
			}
			if err == nil {
				o.announce()
			}
		}
		if firstErr == nil && waitErr != nil {
			firstErr = fmt.Errorf("redrive: publish %d messages to %q: %w", len(req.msgs), req.msgs[0].topic, waitErr)
		}
		req.done <- firstErr
	}
	return failed
}

// errNoReply stands for the reason a command got no reply when Exec gave
// none.
var errNoReply = errors.New("no reply from Redis")

// replied reports whether an XADD or ZADD of the pipeline got its reply: an
// entry ID, or 1 for a member (members are unique).
func replied(cmd redis.Cmder) bool {
	switch cmd := cmd.(type) {
	case *redis.StringCmd:
		return cmd.Val() != ""
	case *redis.IntCmd:
		return cmd.Val() != 0
	}
	return true
}

// waitError tells why a pipeline's WAIT did not confirm WaitReplicas
// replicas, or nil (also when there was no WAIT). execErr is the pipeline's
// error, for a WAIT left without reply.
func (p *Publisher) waitError(wait *redis.Cmd, execErr error) error {
	if wait == nil {
		return nil
	}
	if wait.Err() == nil && wait.Val() == nil {
		return fmt.Errorf("WAIT %d replicas: %w", p.config.WaitReplicas, execErr)
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("WAIT %d replicas: %w", p.config.WaitReplicas, err)
	}
	if n < int64(p.config.WaitReplicas) {
		return fmt.Errorf("%w: %d of %d replicas acknowledged within %s", ErrNotReplicated, n, p.config.WaitReplicas, p.config.WaitTimeout)
	}
	return nil
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
	return nil
}
