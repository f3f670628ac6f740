package redrive

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// subscription is one Subscribe call: the reader, the dispatcher that hands
// messages to the channel, the acker and the background services.
type subscription struct {
	cfg    *SubscriberConfig
	client redis.UniversalClient
	topic  string
	keys   TopicKeys
	group  string
	logger watermill.LoggerAdapter
	// wakeups is the Subscriber's listener for delayed-message wake-ups.
	wakeups *wakeupListener

	// retryStream is the group's private retry stream ("" in fan-out).
	retryStream string
	poisonTopic string
	// fanOutLastID is where the next fan-out read starts.
	fanOutLastID string

	ctx    context.Context
	cancel context.CancelFunc
	// messageBase is what message contexts derive from: the Subscribe
	// context's values without its cancellation. Each message's context is
	// cancelled by its own delivery (settled, given back, or CloseTimeout),
	// so none needs registering with a cancellable parent.
	messageBase context.Context
	out         chan *message.Message

	// slots holds one token per message that may be out; a delivery holds
	// its token from the read until it is acked, poisoned or released.
	slots     chan struct{}
	queue     chan *delivery
	redeliver chan *delivery
	ahead     *readAhead
	// reader is the connection the reader blocks on.
	reader *readerConn
	// stalled is set while the dispatcher gave entries back because nobody
	// took them: the claimer takes nothing meanwhile.
	stalled atomic.Bool

	stopReading chan struct{}
	// ownPendingRead is closed once the reader has read this consumer's
	// own pending entries (left by an earlier process with the same
	// Consumer name); the claimer starts after it.
	ownPendingRead chan struct{}
	ownPendingOnce sync.Once
	// firstClaimPass is closed after the claimer's first pass; the reader's
	// first blocking read waits for it (nil without a claimer).
	firstClaimPass chan struct{}
	stopAll        chan struct{}
	// reading and dispatching end when their loops return.
	reading     sync.WaitGroup
	dispatching sync.WaitGroup
	// handedOut counts messages out with handlers (also in handedOutCount,
	// which can be read) and the outcome watcher's goroutine while it runs.
	handedOut      sync.WaitGroup
	handedOutCount atomic.Int64
	outcomes       *outcomeWatcher
	// closing is set once the channel closed; settled then receives a
	// signal whenever a handed-out message is acked or nacked.
	closing atomic.Bool
	settled chan struct{}

	// inflight holds the entries read and not yet settled or given back.
	inflight *inflightEntries

	acker    *acker
	poisoner *poisoner
	settler  *deliverySettler
	claimer  *claimer
	janitor  *consumerJanitor
	keeper   *inflightKeeper
	movers   []*DelayedMover
	trimmer  *Trimmer
	shutOnce sync.Once

	// trimmedAway counts entries of the group found gone from the stream.
	trimmedAway trimmedAwayLog
}

// newSubscription creates the subscription of topic; wakeups is the
// Subscriber's wake-up listener its delayed-message movers register with.
func newSubscription(ctx context.Context, c *SubscriberConfig, logger watermill.LoggerAdapter, wakeups *wakeupListener, topic string) *subscription {
	sub := &subscription{
		cfg:            c,
		wakeups:        wakeups,
		client:         c.Client,
		topic:          topic,
		keys:           KeysFor(topic),
		group:          c.ConsumerGroup,
		out:            make(chan *message.Message),
		slots:          make(chan struct{}, c.MaxInFlight),
		queue:          make(chan *delivery, c.MaxInFlight),
		redeliver:      make(chan *delivery, c.MaxInFlight),
		ahead:          newReadAhead(c.ReadAhead),
		outcomes:       newOutcomeWatcher(),
		reader:         newReaderConn(c.Client, topic),
		settled:        make(chan struct{}, 1),
		stopReading:    make(chan struct{}),
		ownPendingRead: make(chan struct{}),
		firstClaimPass: make(chan struct{}),
		stopAll:        make(chan struct{}),
		inflight:       newInflightEntries(),
		poisonTopic:    c.PoisonTopic,
	}
	sub.messageBase = context.WithoutCancel(ctx)
	sub.ctx, sub.cancel = context.WithCancel(sub.messageBase)
	for range c.MaxInFlight {
		sub.slots <- struct{}{}
	}
	if sub.group != "" {
		sub.retryStream = sub.keys.GroupRetry(sub.group)
	}
	if sub.poisonTopic == "" {
		sub.poisonTopic = sub.keys.Poison
	}
	sub.logger = logger.With(watermill.LogFields{
		"provider":       "redrive",
		"topic":          topic,
		"consumer_group": c.ConsumerGroup,
		"consumer":       c.Consumer,
	})
	sub.trimmedAway.logger = sub.logger
	group := groupStreams{Group: sub.group, RetryStream: sub.retryStream}
	sub.poisoner = newPoisoner(poisonerConfig{
		Client:        sub.client,
		Topic:         topic,
		groupStreams:  group,
		Consumer:      c.Consumer,
		PoisonTopic:   sub.poisonTopic,
		MaxDeliveries: c.maxDeliveries(),
		Marshaller:    c.Marshaller,
		Unmarshaller:  c.Unmarshaller,
		OnCrashLoop:   c.OnCrashLoop,
		Logger:        sub.logger,
	})
	sub.settler = &deliverySettler{
		Client:       sub.client,
		Topic:        topic,
		Keys:         sub.keys,
		groupStreams: group,
		Marshaller:   c.Marshaller,
		Poisoner:     sub.poisoner,
		Logger:       sub.logger,
	}
	return sub
}

func (s *subscription) config() *SubscriberConfig { return s.cfg }

// streams are the streams the subscription reads: the topic's, then the
// group's retry stream.
func (s *subscription) streams() []string {
	if s.retryStream == "" {
		return []string{s.keys.Stream}
	}
	return []string{s.keys.Stream, s.retryStream}
}

func (s *subscription) createGroups(ctx context.Context) error {
	start := map[string]string{s.keys.Stream: s.config().OldestId, s.retryStream: "0"}
	for _, stream := range s.streams() {
		if err := createGroup(ctx, s.client, stream, s.group, start[stream]); err != nil {
			return err
		}
	}
	return nil
}

// resolveFanOutStart turns "$" into the stream's last ID once, so entries
// added between two reads are never skipped.
func (s *subscription) resolveFanOutStart(ctx context.Context) error {
	s.fanOutLastID = s.config().FanOutOldestId
	if s.fanOutLastID != "$" {
		return nil
	}
	last, err := s.client.XRevRangeN(ctx, s.keys.Stream, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("redrive: read the last entry of %q: %w", s.keys.Stream, err)
	}
	s.fanOutLastID = "0-0"
	if len(last) == 1 {
		s.fanOutLastID = last[0].ID
	}
	return nil
}

func (s *subscription) start() error {
	c := s.config()
	s.acker = newAcker(ackerConfig{
		Client:           s.client,
		groupStreams:     s.settler.groupStreams,
		AckBatchSize:     c.AckBatchSize,
		AckFlushInterval: c.AckFlushInterval,
		Logger:           s.logger,
	})
	s.acker.start()
	if s.group != "" {
		s.claimer = newClaimer(claimerConfig{
			Client:         s.client,
			Topic:          s.topic,
			Streams:        s.streams(),
			Group:          s.group,
			Consumer:       c.Consumer,
			MaxIdleTime:    c.MaxIdleTime,
			MaxDeliveries:  c.maxDeliveries(),
			ClaimBatchSize: c.ClaimBatchSize,
			ClaimInterval:  c.ClaimInterval,
			OnClaim:        c.OnClaim,
			OnTrimmedAway:  s.trimmedAway.note,
			StartAfter:     s.ownPendingRead,
			FirstPassDone:  s.firstClaimPass,
			Logger:         s.logger,
		}, s, s.poisoner)
		s.janitor = newConsumerJanitor(consumerJanitorConfig{
			Client:          s.client,
			Streams:         s.streams(),
			Group:           s.group,
			Consumer:        c.Consumer,
			ConsumerTimeout: c.ConsumerTimeout,
			Interval:        c.CheckConsumersInterval,
			Logger:          s.logger,
		})
		s.keeper = newInflightKeeper(inflightKeeperConfig{
			Client:      s.client,
			Topic:       s.topic,
			Group:       s.group,
			Consumer:    c.Consumer,
			MaxIdleTime: c.MaxIdleTime,
			Logger:      s.logger,
		}, s.inflight)
	}
	if !c.DisableDelayedMover {
		pairs := [][2]string{{s.keys.Delayed, s.keys.Stream}}
		if s.group != "" {
			pairs = append(pairs, [2]string{s.keys.GroupRetryDelayed(s.group), s.retryStream})
		}
		for _, p := range pairs {
			mover, err := NewDelayedMover(DelayedMoverConfig{
				Client:       s.client,
				Topic:        s.topic,
				Delayed:      p[0],
				Stream:       p[1],
				PollInterval: c.DelayedPollInterval,
				BatchSize:    c.DelayedBatchSize,
				Maxlen:       c.DelayedMaxlen,
			}, s.logger)
			if err != nil {
				return err
			}
			mover.listensElsewhere = true // the Subscriber's wake-up listener
			s.movers = append(s.movers, mover)
		}
	}
	if err := s.startTrimming(); err != nil {
		return err
	}
	for _, svc := range s.services() {
		if err := svc.Start(s.ctx); err != nil {
			return err
		}
	}
	s.wakeups.add(s.topic, s.delayedKeys())
	s.reading.Add(1)
	s.dispatching.Add(1)
	go s.readLoop()
	go s.dispatchLoop()
	s.logger.Info("Subscribed", nil)
	return nil
}

type service interface {
	Start(context.Context) error
	Stop()
}

func (s *subscription) services() []service {
	var svcs []service
	if s.claimer != nil {
		svcs = append(svcs, s.claimer, s.janitor, s.keeper)
	}
	for _, m := range s.movers {
		svcs = append(svcs, m)
	}
	if s.trimmer != nil {
		svcs = append(svcs, s.trimmer)
	}
	return svcs
}

// shutdown stops reading and gives every entry not out with a handler back
// to the group, without waiting for the messages out with handlers: a reader
// that stopped reading may never ack them. Those get CloseTimeout to be acked
// or nacked in the background (finish), their contexts intact, and the
// channel closes after them; when nothing is out, finish runs before shutdown
// returns.
// A blocking read in flight is cut short: its connection is the
// subscription's own, and closing it ends the read at once.
func (s *subscription) shutdown() {
	s.shutOnce.Do(func() {
		close(s.stopReading)
		// Ends a blocking read at once; the entries it may have brought
		// are given back in finish.
		s.reader.close()
		if s.claimer != nil {
			// Claiming is reading too: an entry claimed now would only be
			// released again, with one more delivery counted against
			// MaxDeliveries.
			s.claimer.Stop()
		}
		s.dispatching.Wait()
		s.giveBack(s.inflight.notHandedOut())
		if s.janitor != nil {
			s.janitor.Stop()
		}
		for _, m := range s.movers {
			m.Stop()
		}
		s.wakeups.remove(s.topic, s.delayedKeys())
		if s.trimmer != nil {
			s.trimmer.Stop()
		}
		s.closing.Store(true)
		if !s.inflight.awaitingHandlers() {
			// Every message out was acked or nacked already: settle them
			// and close the channel before Close returns.
			s.finish()
			return
		}
		go s.finish()
	})
}

// finish waits for the messages out with handlers while they keep being
// settled (up to CloseTimeout without any ack or nack), flushes acks, and
// gives back what is still unsettled.
func (s *subscription) finish() {
	// The reader may still ack entries that were deleted while pending.
	s.reading.Wait()
	allSettled := make(chan struct{})
	go func() {
		s.handedOut.Wait()
		close(allSettled)
	}()
	timeout := time.NewTimer(s.config().CloseTimeout)
	defer timeout.Stop()
wait:
	for {
		select {
		case <-allSettled:
			break wait
		case <-s.settled:
			timeout.Reset(s.config().CloseTimeout)
		case <-timeout.C:
			s.logger.Info("Close timeout: messages not acked in time go back to the group", watermill.LogFields{"count": s.handedOutCount.Load()})
			break wait
		}
	}
	close(s.stopAll)
	s.handedOut.Wait()
	s.acker.stop()
	for _, svc := range s.services() {
		svc.Stop()
	}
	if s.keeper != nil {
		s.keeper.releaseAll()
	}
	s.releaseCutRead()
	// Closed last: a message.Router waits for its subscriptions' channels to
	// close, so its Close returns after the acks of its handlers reached
	// Redis.
	close(s.out)
	s.cancel()
	s.logger.Info("Subscription closed", nil)
}

// handlersStalled tells whether the dispatcher gave entries back because
// nobody took them, and no handler took one since.
func (s *subscription) handlersStalled() bool { return s.stalled.Load() }

// giveBack stops holding entries that no handler has and marks them idle for
// MaxIdleTime, so the group's claimers take them at their next pass.
func (s *subscription) giveBack(entries []*pendingEntry) {
	if len(entries) == 0 {
		return
	}
	ids := map[string][]string{}
	released := 0
	for _, pe := range entries {
		if !s.inflight.untrack(pe) {
			continue // given back meanwhile by another path
		}
		ids[pe.stream] = append(ids[pe.stream], pe.id)
		released++
	}
	s.releaseSlots(released)
	if s.group == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if _, err := s.keeper.giveBack(ctx, ids); err != nil {
		s.logger.Error("Could not give entries back to the group; others claim them after MaxIdleTime", err, nil)
	}
}

// settle acks an entry (unless Requeue or Poison already did) and frees its
// slot.
func (s *subscription) settle(pe *pendingEntry) {
	if s.group != "" && !pe.settled.Load() {
		pe.ackedLocally.Store(true)
		s.acker.add(pe.stream, pe.id)
	}
	if s.inflight.untrack(pe) {
		s.releaseSlots(1)
	}
}

// poisonOverDelivered moves an own pending entry delivered too many times to
// the poison stream. When that fails it stays pending, undelivered, and the
// claimer poisons it after MaxIdleTime.
func (s *subscription) poisonOverDelivered(stream string, entry redis.XMessage, delivered int64) {
	if len(entry.Values) == 0 {
		// Deleted meanwhile: nothing to keep, ack it away.
		s.acker.add(stream, entry.ID)
		return
	}
	if err := s.poisoner.poisonCrashLoop(s.ctx, stream, entry.ID, entry.Values, delivered); err != nil {
		s.logger.Error("Could not poison an entry delivered too many times; it stays pending", err,
			watermill.LogFields{"stream": stream, "entry_id": entry.ID, "deliveries": delivered})
	}
}
