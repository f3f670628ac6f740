package redrive

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/errorbackoff"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/testsignal"
)

// ackFlushAttemptsAtClose bounds how often a failed ack batch is sent again
// once the subscription is closing. Until then a batch is sent again, with
// capped backoff, until Redis takes it: acks dropped during an outage would
// make every message handled meanwhile run again. An ack that never reaches
// Redis is not lost work: the entry stays pending and is delivered again
// (at-least-once).
const ackFlushAttemptsAtClose = 5

type ackRequest struct {
	stream string
	id     string
}

// groupStreams names a consumer group and its private retry stream ("" in
// fan-out, where both are empty): what acking an entry needs to know.
type groupStreams struct {
	Group       string
	RetryStream string
}

// deleteSettled reports whether a settled entry of stream is deleted as well
// as acked: entries of the group's private retry stream are, nobody else
// reads them.
func (g groupStreams) deleteSettled(stream string) bool {
	return stream == g.RetryStream && g.RetryStream != ""
}

// ackerConfig is what the acker needs.
type ackerConfig struct {
	Client redis.UniversalClient
	groupStreams
	// AckBatchSize and AckFlushInterval are SubscriberConfig's.
	AckBatchSize     int
	AckFlushInterval time.Duration
	Logger           watermill.LoggerAdapter
}

// acker sends acks in batches: an ack waits up to AckFlushInterval for
// others to share its round trip, or goes at once when AckBatchSize are
// waiting. One XACK per stream per batch, all in one pipeline.
type acker struct {
	config ackerConfig
	// queued holds the acks of the next batch; adders wait on space while
	// a full batch is queued.
	mu     sync.Mutex
	queued []ackRequest
	space  *sync.Cond
	// ready wakes run when a batch starts (its first ack) and when it is full.
	ready   chan struct{}
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once

	TestSignals ackerTestSignals
}

type ackerTestSignals struct {
	// Flushed carries the number of acks of each batch that reached Redis.
	Flushed testsignal.Signal[int]
}

// Init enables every signal for the test tb.
func (ts *ackerTestSignals) Init(tb testsignal.TB) {
	ts.Flushed.Init(tb)
}

func newAcker(config ackerConfig) *acker {
	a := &acker{
		config:  config,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	a.space = sync.NewCond(&a.mu)
	return a
}

func (a *acker) start() { go a.run() }

// add queues an ack. It blocks only while a full batch is waiting to be
// taken for sending.
func (a *acker) add(stream, id string) {
	size := a.config.AckBatchSize
	a.mu.Lock()
	for len(a.queued) >= size {
		a.space.Wait()
	}
	a.queued = append(a.queued, ackRequest{stream: stream, id: id})
	n := len(a.queued)
	a.mu.Unlock()
	if n == 1 || n == size {
		select {
		case a.ready <- struct{}{}:
		default:
		}
	}
}

// stop flushes every queued ack and stops. Callers must not add after stop.
func (a *acker) stop() {
	a.once.Do(func() { close(a.done) })
	<-a.stopped
}

// take moves the queued acks (at most one batch) to batch.
func (a *acker) take(batch []ackRequest) []ackRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	batch = append(batch, a.queued...)
	clear(a.queued)
	a.queued = a.queued[:0]
	a.space.Broadcast()
	return batch
}

func (a *acker) full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queued) >= a.config.AckBatchSize
}

func (a *acker) run() {
	defer close(a.stopped)
	c := a.config
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []ackRequest
	for {
		select {
		case <-a.ready:
		case <-a.done:
			a.flush(a.take(batch[:0]))
			return
		}
		if !a.full() {
			timer.Reset(c.AckFlushInterval)
		wait:
			for {
				select {
				case <-a.ready:
					if a.full() {
						break wait
					}
				case <-timer.C:
					break wait
				case <-a.done:
					timer.Stop()
					a.flush(a.take(batch[:0]))
					return
				}
			}
			timer.Stop()
		}
		batch = a.take(batch[:0])
		a.flush(batch)
		clear(batch)
	}
}

func (a *acker) flush(batch []ackRequest) {
	if len(batch) == 0 {
		return
	}
	byStream := map[string][]string{}
	for _, r := range batch {
		byStream[r.stream] = append(byStream[r.stream], r.id)
	}
	failures := newErrorLog(a.config.Logger, "Acking messages failed; retrying (the messages are delivered again if it never succeeds)")
	pauses := errorbackoff.New(readErrorBackoff, readErrorBackoffMax)
	attemptsAtClose := 0
	for {
		err := a.send(byStream)
		if redisinfo.IsNoScript(err) {
			err = a.send(byStream) // the script is loaded now
		}
		if err == nil {
			failures.succeeded()
			a.TestSignals.Flushed.Signal(len(batch))
			return
		}
		failures.failed(err)
		select {
		case <-a.done:
			attemptsAtClose++
			if attemptsAtClose >= ackFlushAttemptsAtClose {
				return
			}
		default:
		}
		t := time.NewTimer(pauses.Failed())
		select {
		case <-t.C:
		case <-a.done:
			t.Stop()
		}
	}
}

func (a *acker) send(byStream map[string][]string) error {
	ctx := context.Background()
	pipe := a.config.Client.Pipeline()
	for stream, ids := range byStream {
		a.config.ack(ctx, pipe, stream, ids...)
	}
	_, err := pipe.Exec(ctx)
	if err != nil && err != redis.Nil {
		if redisinfo.IsNoScript(err) {
			// Script.Run falls back to EVAL by itself, but not inside a
			// pipeline: load the script (new server, or one that restarted)
			// and let flush send the batch again.
			if loadErr := scripts.AckDelete.Load(ctx, a.config.Client); loadErr != nil {
				return loadErr
			}
		}
		return err
	}
	return nil
}

// ackCmdable is a client or a pipeline that can ack.
type ackCmdable interface {
	redis.Scripter
	XAck(ctx context.Context, stream, group string, ids ...string) *redis.IntCmd
}

// ack acks ids of stream on c, at once. Entries of the group's private
// retry stream are deleted in the same step: nobody else reads them.
func (g groupStreams) ack(ctx context.Context, c ackCmdable, stream string, ids ...string) redis.Cmder {
	if g.deleteSettled(stream) {
		return scripts.AckDelete.Queue(ctx, c, scripts.AckDeleteArgs{Stream: stream, Group: g.Group, IDs: ids})
	}
	return c.XAck(ctx, stream, g.Group, ids...)
}
