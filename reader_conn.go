package redrive

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/testsignal"
)

// sharedClientBlockTime bounds a blocking read on the caller's client, which
// cannot be interrupted (go-redis ends a blocking read at its deadline, not
// when its context is cancelled): it is how long Close may wait for it.
const sharedClientBlockTime = 100 * time.Millisecond

// readerConn is the connection a subscription's reader blocks on: a client
// of one connection that the subscription owns, built from the options of
// the caller's client (*redis.Client, including a Sentinel failover client)
// or, for a *redis.ClusterClient, of the master that serves the topic's slot.
// Closing it ends a blocking read at once, so a read may block for long and
// Close still returns promptly; and blocking reads never take connections
// from the caller's pool. Any other client is used as it is, with reads
// bounded by sharedClientBlockTime. The caller's client is never closed.
type readerConn struct {
	shared redis.UniversalClient
	// streamKey is a key of the topic, to find its master in a cluster.
	streamKey string
	// own tells whether reads go to a client of the reader's own.
	own bool

	mu sync.Mutex
	// client is the reader's own client: nil before the first read, after an
	// error (the next read connects again, to the master serving the slot
	// now) and after an interruption.
	client *redis.Client
	// blocking is set while a blocking read is in flight on client; reads
	// counts the reads, and cutRead is the number of the read an
	// interruption ended.
	blocking bool
	reads    uint64
	cutRead  uint64
	// lastCut is when a blocking read was last cut short: its reply, with
	// entries Redis assigned to this consumer, may be lost.
	lastCut time.Time
	// slotWaiters counts the services waiting for an in-flight slot: while
	// one waits, no blocking read goes out (it would hold its slots for as
	// long as it blocks), and the one in flight was cut short.
	slotWaiters int
	closed      bool

	TestSignals readerConnTestSignals
}

type readerConnTestSignals struct {
	// Blocking is sent when a blocking read goes out on the reader's own
	// connection.
	Blocking testsignal.Signal[struct{}]
}

func newReaderConn(shared redis.UniversalClient, streamKey string) *readerConn {
	r := &readerConn{shared: shared, streamKey: streamKey}
	switch shared.(type) {
	case *redis.Client, *redis.ClusterClient:
		r.own = true
	}
	return r
}

// blockTime is how long a read may block on this connection.
func (r *readerConn) blockTime(configured time.Duration) time.Duration {
	if r.own {
		return configured
	}
	return min(configured, sharedClientBlockTime)
}

// readLease is one read in flight on the reader's connection.
type readLease struct {
	client redis.Cmdable
	n      uint64
	own    *redis.Client
}

// acquire returns the client for one read. ok is false when the read must
// not go out: the connection closed, or an interruption asked the next
// blocking read to return at once.
func (r *readerConn) acquire(ctx context.Context, blocking bool) (lease readLease, ok bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || (blocking && r.slotWaiters > 0) {
		return readLease{}, false, nil
	}
	if !r.own {
		return readLease{client: r.shared}, true, nil
	}
	if r.client == nil {
		opts, err := r.options(ctx)
		if err != nil {
			return readLease{}, false, err
		}
		r.client = redis.NewClient(opts)
	}
	r.reads++
	r.blocking = blocking
	if blocking {
		r.TestSignals.Blocking.Signal(struct{}{})
	}
	return readLease{client: r.client, n: r.reads, own: r.client}, true, nil
}

// options are the reader's own client's: the caller's, with one connection.
func (r *readerConn) options(ctx context.Context) (*redis.Options, error) {
	var base *redis.Options
	switch c := r.shared.(type) {
	case *redis.Client:
		base = c.Options()
	case *redis.ClusterClient:
		master, err := c.MasterForKey(ctx, r.streamKey)
		if err != nil {
			return nil, fmt.Errorf("find the master of %q: %w", r.streamKey, err)
		}
		base = master.Options()
	}
	opts := *base
	opts.PoolSize = 1
	opts.MinIdleConns = 0
	opts.MaxIdleConns = 1
	opts.MaxActiveConns = 1
	return &opts, nil
}

// release ends the read of lease. cut is true when an interruption ended it
// (its error means nothing then). After an error the own client is dropped:
// the next read connects anew, to the master that serves the slot now.
func (r *readerConn) release(lease readLease, err error) (cut bool) {
	if lease.own == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if lease.n == r.reads {
		r.blocking = false
	}
	if lease.n == r.cutRead {
		return true
	}
	if err != nil && err != redis.Nil && r.client == lease.own {
		_ = r.client.Close()
		r.client = nil
		if cc, ok := r.shared.(*redis.ClusterClient); ok {
			// MOVED, ASK or a dead master, perhaps: the slot map may be
			// stale, and only the cluster client can learn the new one (in
			// the background) for the next read's MasterForKey.
			cc.ReloadState(context.Background())
		}
	}
	return false
}

// waitingForSlot tells the reader that a service waits for an in-flight
// slot, which a blocking read holds for as long as it blocks: the read in
// flight is cut short, and none starts until the returned func is called
// (once the service got its slot, or gave up).
func (r *readerConn) waitingForSlot() (done func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slotWaiters++
	if r.own && r.blocking {
		r.cut()
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.slotWaiters--
	}
}

// close ends the read in flight and closes the reader's own client for good.
func (r *readerConn) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.blocking {
		r.cut()
	}
	if r.client != nil {
		_ = r.client.Close()
		r.client = nil
	}
}

// cut closes the client of the blocking read in flight. Called with mu held.
func (r *readerConn) cut() {
	r.cutRead = r.reads
	r.lastCut = time.Now()
	r.blocking = false
	_ = r.client.Close()
	r.client = nil
}

// lastCutAt is when a blocking read was last cut short; zero if never.
func (r *readerConn) lastCutAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastCut
}

// delayedKeys are the delayed sets whose movers run in this subscription.
func (s *subscription) delayedKeys() []string {
	keys := make([]string, 0, len(s.movers))
	for _, m := range s.movers {
		keys = append(keys, m.config.Delayed)
	}
	return keys
}

// cutReplyWindow is how long before a read was cut short the entries
// Redis delivered may have been in its lost reply.
const cutReplyWindow = time.Second

// releaseCutRead gives back to the group the entries the last blocking read
// cut short may have taken: Redis assigned them to this consumer, but their
// reply was lost with the connection. Those are the pending entries of this
// consumer delivered shortly before the cut and not held: they are marked
// idle for MaxIdleTime, so the claimers of the group take them at their next
// pass instead of after MaxIdleTime. It runs once the acks were sent.
func (s *subscription) releaseCutRead() {
	cutAt := s.reader.lastCutAt()
	if s.group == "" || cutAt.IsZero() {
		return
	}
	held := s.inflight.ids()
	c := s.config()
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	ids := map[string][]string{}
	for _, stream := range s.streams() {
		pending, err := s.client.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream:   stream,
			Group:    s.group,
			Start:    "-",
			End:      "+",
			Count:    int64(c.MaxInFlight) + 2*c.ReadBatchSize,
			Consumer: c.Consumer,
		}).Result()
		if err != nil {
			s.logger.Error("Could not list the entries of an interrupted read; others claim them after MaxIdleTime", err, watermill.LogFields{"stream": stream})
			continue
		}
		for _, p := range pending {
			delivered := time.Now().Add(-p.Idle)
			if delivered.Before(cutAt.Add(-cutReplyWindow)) || delivered.After(cutAt.Add(cutReplyWindow/10)) || slices.Contains(held[stream], p.ID) {
				continue
			}
			ids[stream] = append(ids[stream], p.ID)
		}
	}
	if _, err := s.keeper.giveBack(ctx, ids); err != nil {
		s.logger.Error("Could not give back the entries of an interrupted read; others claim them after MaxIdleTime", err, nil)
	}
}
