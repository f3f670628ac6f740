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

// Read error backoff: the first pause after a failed read, doubled up to the
// cap while the failures go on.
const (
	readErrorBackoff    = 50 * time.Millisecond
	readErrorBackoffMax = 5 * time.Second
)

// subscription is one Subscribe call: the reader, the dispatcher that hands
// messages to the channel, the acker and the background services.
type subscription struct {
	sub    *Subscriber
	client redis.UniversalClient
	topic  string
	keys   TopicKeys
	group  string
	logger watermill.LoggerAdapter

	// retryStream is the group's private retry stream ("" in fan-out).
	retryStream string
	poisonTopic string
	// fanOutLastID is where the next fan-out read starts.
	fanOutLastID string

	ctx    context.Context
	cancel context.CancelFunc
	out    chan *message.Message

	// slots holds one token per message that may be out; a delivery holds
	// its token from the read until it is acked, poisoned or released.
	slots     chan struct{}
	queue     chan *delivery
	redeliver chan *delivery

	stopReading chan struct{}
	stopAll     chan struct{}
	workers     sync.WaitGroup
	handedOut   sync.WaitGroup

	inflightMu sync.Mutex
	inflight   map[string]map[string]*pendingEntry

	acker    *acker
	claimer  *claimer
	janitor  *consumerJanitor
	keeper   *inflightKeeper
	movers   []*DelayedMover
	trimmer  *Trimmer
	shutOnce sync.Once

	// trimmedAway counts entries of the group found gone from the stream.
	trimmedAway trimmedAwayLog
}

// delivery is one handing-out of a pending entry as a message.
type delivery struct {
	entry  *pendingEntry
	msg    *message.Message
	cancel context.CancelFunc
}

func newSubscription(ctx context.Context, s *Subscriber, topic string) *subscription {
	c := s.config
	sub := &subscription{
		sub:         s,
		client:      c.Client,
		topic:       topic,
		keys:        KeysFor(topic),
		group:       c.ConsumerGroup,
		out:         make(chan *message.Message),
		slots:       make(chan struct{}, c.MaxInFlight),
		queue:       make(chan *delivery, c.MaxInFlight),
		redeliver:   make(chan *delivery, c.MaxInFlight),
		stopReading: make(chan struct{}),
		stopAll:     make(chan struct{}),
		inflight:    map[string]map[string]*pendingEntry{},
		poisonTopic: c.PoisonTopic,
	}
	sub.ctx, sub.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range c.MaxInFlight {
		sub.slots <- struct{}{}
	}
	if sub.group != "" {
		sub.retryStream = sub.keys.GroupRetry(sub.group)
	}
	if sub.poisonTopic == "" {
		sub.poisonTopic = sub.keys.Poison
	}
	sub.logger = s.logger.With(watermill.LogFields{
		"provider":       "redrive",
		"topic":          topic,
		"consumer_group": c.ConsumerGroup,
		"consumer":       c.Consumer,
	})
	return sub
}

func (s *subscription) config() *SubscriberConfig { return &s.sub.config }

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
	s.acker = newAcker(s)
	s.acker.start()
	if s.group != "" {
		s.claimer = newClaimer(s)
		s.janitor = newConsumerJanitor(s)
		s.keeper = newInflightKeeper(s)
	}
	if !c.DisableDelayedMover {
		pairs := [][2]string{{s.keys.Delayed, s.keys.Stream}}
		if s.group != "" {
			pairs = append(pairs, [2]string{s.keys.GroupRetryDelayed(s.group), s.retryStream})
		}
		for _, p := range pairs {
			mover, err := NewDelayedMover(DelayedMoverConfig{
				Client:       s.client,
				Delayed:      p[0],
				Stream:       p[1],
				PollInterval: c.DelayedPollInterval,
				BatchSize:    c.DelayedBatchSize,
				Maxlen:       c.DelayedMaxlen,
			}, s.logger)
			if err != nil {
				return err
			}
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
	s.workers.Add(2)
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

// shutdown stops reading, gives handed-out messages CloseTimeout to be acked
// or nacked, flushes acks, releases what is left and closes the channel.
func (s *subscription) shutdown() {
	s.shutOnce.Do(func() {
		close(s.stopReading)
		if s.claimer != nil {
			// Claiming is reading too: an entry claimed now would only be
			// released again, with one more delivery counted against
			// MaxDeliveries.
			s.claimer.Stop()
		}
		s.workers.Wait()

		settled := make(chan struct{})
		go func() {
			s.handedOut.Wait()
			close(settled)
		}()
		select {
		case <-settled:
		case <-time.After(s.config().CloseTimeout):
			s.logger.Info("Close timeout: messages not acked in time stay pending for other consumers", nil)
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
		s.cancel()
		close(s.out)
		s.logger.Info("Subscription closed", nil)
	})
}

// acquireSlots waits for one free slot, then takes up to want-1 more that are
// free. It returns 0 when reading stops.
func (s *subscription) acquireSlots(want int) int {
	select {
	case <-s.slots:
	case <-s.stopReading:
		return 0
	}
	return 1 + s.tryAcquireSlots(want-1)
}

// waitSlots is acquireSlots for the background services: it also gives up
// when ctx ends.
func (s *subscription) waitSlots(ctx context.Context, want int) int {
	select {
	case <-s.slots:
	case <-s.stopReading:
		return 0
	case <-ctx.Done():
		return 0
	}
	return 1 + s.tryAcquireSlots(want-1)
}

// tryAcquireSlots takes up to want free slots without waiting.
func (s *subscription) tryAcquireSlots(want int) int {
	n := 0
	for n < want {
		select {
		case <-s.slots:
			n++
		default:
			return n
		}
	}
	return n
}

func (s *subscription) releaseSlots(n int) {
	for range n {
		s.slots <- struct{}{}
	}
}

func (s *subscription) readLoop() {
	defer s.workers.Done()
	failures := newErrorLog(s.logger, "Reading the stream failed")
	var backoff time.Duration
	history := s.group != ""
	historyFrom := map[string]string{}
	for _, st := range s.streams() {
		historyFrom[st] = "0"
	}
	for {
		n := s.acquireSlots(int(s.config().ReadBatchSize))
		if n == 0 {
			return
		}
		streams, err := s.read(n, history, historyFrom)
		switch {
		case errors.Is(err, redis.Nil):
			err = nil
		case isNoGroup(err):
			// The stream or group was deleted under us: recreate and go on.
			s.logger.Info("Consumer group missing; recreating it", watermill.LogFields{"err": err.Error()})
			err = s.createGroups(s.ctx)
		}
		if err != nil {
			s.releaseSlots(n)
			if s.stoppedReading() {
				return
			}
			failures.failed(err)
			backoff = min(max(2*backoff, readErrorBackoff), readErrorBackoffMax)
			if !s.sleep(backoff) {
				return
			}
			continue
		}
		failures.succeeded()
		backoff = 0

		got := 0
		for _, st := range streams {
			got += len(st.Messages)
		}
		if history && got == 0 {
			history = false
		}
		var overDelivered map[string]map[string]int64
		if history {
			overDelivered = s.overDelivered(streams)
		}
		// XREADGROUP's COUNT applies per stream, so two streams may return up
		// to twice what was asked; the extra entries wait for their slots.
		held := n
		for _, st := range streams {
			for _, entry := range st.Messages {
				if history {
					historyFrom[st.Stream] = entry.ID
				}
				if s.group == "" {
					s.fanOutLastID = entry.ID
				}
				if held == 0 {
					select {
					case <-s.slots:
						held++
					case <-s.stopReading:
						// Ours in Redis but never delivered: released at shutdown.
						s.track(&pendingEntry{sub: s, stream: st.Stream, id: entry.ID})
						continue
					}
				}
				held--
				if delivered, ok := overDelivered[st.Stream][entry.ID]; ok {
					s.poisonOverDelivered(st.Stream, entry, delivered)
					s.releaseSlots(1)
					continue
				}
				s.accept(st.Stream, entry)
			}
		}
		s.releaseSlots(held)
	}
}

func (s *subscription) read(count int, history bool, historyFrom map[string]string) ([]redis.XStream, error) {
	c := s.config()
	if s.group == "" {
		return s.client.XRead(s.ctx, &redis.XReadArgs{
			Streams: []string{s.keys.Stream, s.fanOutLastID},
			Count:   int64(count),
			Block:   c.BlockTime,
		}).Result()
	}
	streams := s.streams()
	args := &redis.XReadGroupArgs{
		Group:    s.group,
		Consumer: c.Consumer,
		Count:    int64(count),
		Block:    c.BlockTime,
	}
	args.Streams = append(args.Streams, streams...)
	for _, st := range streams {
		if history {
			// This consumer's own pending entries, left by an earlier process
			// with the same Consumer name: finish them first.
			args.Streams = append(args.Streams, historyFrom[st])
		} else {
			args.Streams = append(args.Streams, ">")
		}
	}
	if history {
		args.Block = -1
	}
	return s.client.XReadGroup(s.ctx, args).Result()
}

func (s *subscription) stoppedReading() bool {
	select {
	case <-s.stopReading:
		return true
	default:
		return false
	}
}

// sleep waits d; false when reading stops first.
func (s *subscription) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopReading:
		return false
	}
}

// accept takes an entry that holds a slot: it is queued for delivery, or,
// when it cannot be delivered, settled at once and its slot freed.
func (s *subscription) accept(stream string, entry redis.XMessage) {
	if len(entry.Values) == 0 {
		// Deleted (trimmed) while pending: nothing to deliver, ack it away.
		if s.group != "" {
			s.acker.add(stream, entry.ID)
			s.noteTrimmedAway(stream, 1)
		}
		s.releaseSlots(1)
		return
	}
	msg, err := decodeEntry(s.config().Unmarshaller, entry.ID, entry.Values)
	if err != nil {
		s.poisonUndecodable(stream, entry, err)
		s.releaseSlots(1)
		return
	}
	pe := &pendingEntry{sub: s, stream: stream, id: entry.ID}
	s.track(pe)
	s.queue <- s.newDelivery(pe, msg)
}

func (s *subscription) newDelivery(pe *pendingEntry, msg *message.Message) *delivery {
	d := &Delivery{
		Topic:         s.topic,
		Stream:        pe.stream,
		EntryID:       pe.id,
		ConsumerGroup: s.group,
		Consumer:      s.config().Consumer,
		entry:         pe,
		msg:           msg,
	}
	ctx, cancel := context.WithCancel(context.WithValue(s.ctx, deliveryContextKey{}, d))
	msg.SetContext(ctx)
	return &delivery{entry: pe, msg: msg, cancel: cancel}
}

func (s *subscription) track(pe *pendingEntry) {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	if s.inflight[pe.stream] == nil {
		s.inflight[pe.stream] = map[string]*pendingEntry{}
	}
	s.inflight[pe.stream][pe.id] = pe
}

func (s *subscription) untrack(pe *pendingEntry) {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	delete(s.inflight[pe.stream], pe.id)
}

// inflightIDs lists the entries held, by stream.
func (s *subscription) inflightIDs() map[string][]string {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	ids := map[string][]string{}
	for stream, entries := range s.inflight {
		for id := range entries {
			ids[stream] = append(ids[stream], id)
		}
	}
	return ids
}

// dispatchLoop hands queued messages to the channel one at a time, in the
// order read; redeliveries after a nack go first.
func (s *subscription) dispatchLoop() {
	defer s.workers.Done()
	for {
		var d *delivery
		select {
		case d = <-s.redeliver:
		default:
			select {
			case d = <-s.redeliver:
			case d = <-s.queue:
			case <-s.stopReading:
				return
			}
		}
		s.handedOut.Add(1)
		select {
		case s.out <- d.msg:
			go s.awaitOutcome(d)
		case <-s.stopReading:
			s.handedOut.Done()
			d.cancel()
			return
		}
	}
}

func (s *subscription) awaitOutcome(d *delivery) {
	defer s.handedOut.Done()
	select {
	case <-d.msg.Acked():
		d.cancel()
		s.settle(d.entry)
	case <-d.msg.Nacked():
		d.cancel()
		if d.entry.settled.Load() {
			// Already requeued or poisoned in Redis: nothing to redeliver.
			s.settle(d.entry)
			return
		}
		if sleep := s.config().NackResendSleep; sleep > 0 && !s.sleep(sleep) {
			return
		}
		if s.stoppedReading() {
			return
		}
		s.redeliver <- s.newDelivery(d.entry, d.msg.Copy())
	case <-s.stopAll:
		d.cancel()
	}
}

// settle acks an entry (unless Requeue or Poison already did) and frees its
// slot.
func (s *subscription) settle(pe *pendingEntry) {
	if s.group != "" && !pe.settled.Load() {
		pe.ackedLocally.Store(true)
		s.acker.add(pe.stream, pe.id)
	}
	s.untrack(pe)
	s.releaseSlots(1)
}

// deleteFlag tells the scripts to delete a settled entry from a group's
// private retry stream: nobody else reads it.
func (s *subscription) deleteFlag(stream string) string {
	if stream == s.retryStream && s.retryStream != "" {
		return "1"
	}
	return "0"
}

func (s *subscription) entryFields(stream, id string) watermill.LogFields {
	return watermill.LogFields{"stream": stream, "entry_id": id}
}
