package redrive

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/errorbackoff"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/wire"
)

// Read error backoff: the first pause after a failed read, doubled up to the
// cap while the failures go on.
const (
	readErrorBackoff    = 50 * time.Millisecond
	readErrorBackoffMax = 5 * time.Second
)

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
		return 1 + s.tryAcquireSlots(want-1)
	default:
	}
	// A blocking read holds its slots for as long as it blocks, which may
	// be long: it is cut short, and none starts until this one got a slot.
	defer s.reader.waitingForSlot()()
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

// finishOwnPending tells the claimer the reader is done with this consumer's
// own pending entries.
func (s *subscription) finishOwnPending() {
	s.ownPendingOnce.Do(func() { close(s.ownPendingRead) })
}

func (s *subscription) readLoop() {
	defer s.reading.Done()
	// Entries the last read brought after shutdown gave back what was held.
	defer func() { s.giveBack(s.inflight.notHandedOut()) }()
	defer s.finishOwnPending()
	failures := newErrorLog(s.logger, "Reading the stream failed")
	pauses := errorbackoff.New(readErrorBackoff, readErrorBackoffMax)
	history := s.group != ""
	historyFrom := map[string]string{}
	for _, st := range s.streams() {
		historyFrom[st] = "0"
	}
	waitedForClaimer := s.group == ""
	for {
		if !history && !waitedForClaimer {
			// The claimer's first pass comes first: it may need the slots a
			// blocking read would hold (see claimerConfig.FirstPassDone).
			select {
			case <-s.firstClaimPass:
			case <-s.stopReading:
				return
			}
			waitedForClaimer = true
		}
		want := s.ahead.want(s.stopReading)
		if want == 0 {
			return
		}
		n := s.acquireSlots(min(want, int(s.config().ReadBatchSize)))
		if n == 0 {
			return
		}
		streams, err := s.read(n, history, historyFrom)
		switch {
		case errors.Is(err, redis.Nil):
			err = nil
		case redisinfo.IsNoGroup(err):
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
			if !s.sleep(pauses.Failed()) {
				return
			}
			continue
		}
		failures.succeeded()
		pauses.Succeeded()

		got := 0
		for _, st := range streams {
			got += len(st.Messages)
		}
		if history && got == 0 {
			history = false
			s.finishOwnPending()
		}
		var overDelivered map[string]map[string]int64
		if history {
			overDelivered = s.poisoner.overDelivered(s.ctx, streams)
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
						s.inflight.track(&pendingEntry{stream: st.Stream, id: entry.ID})
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
	block := s.reader.blockTime(c.BlockTime)
	if history {
		block = -1
	}
	lease, ok, err := s.reader.acquire(s.ctx, block >= 0)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Closed, or interrupted before the read went out: nothing read.
		return nil, redis.Nil
	}
	var streams []redis.XStream
	if s.group == "" {
		streams, err = lease.client.XRead(s.ctx, &redis.XReadArgs{
			Streams: []string{s.keys.Stream, s.fanOutLastID},
			Count:   int64(count),
			Block:   block,
		}).Result()
	} else {
		args := &redis.XReadGroupArgs{
			Group:    s.group,
			Consumer: c.Consumer,
			Count:    int64(count),
			Block:    block,
		}
		args.Streams = append(args.Streams, s.streams()...)
		for _, st := range s.streams() {
			if history {
				// This consumer's own pending entries, left by an earlier
				// process with the same Consumer name: finish them first.
				args.Streams = append(args.Streams, historyFrom[st])
			} else {
				args.Streams = append(args.Streams, ">")
			}
		}
		streams, err = lease.client.XReadGroup(s.ctx, args).Result()
	}
	if s.reader.release(lease, err) && err != nil {
		// Cut short (Close, or a service waits for the slots): the reply is
		// lost; entries Redis assigned in it stay pending for this consumer
		// until released at finish, or claimed after MaxIdleTime.
		return nil, redis.Nil
	}
	return streams, err
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
			s.trimmedAway.note(stream, 1)
		}
		s.releaseSlots(1)
		return
	}
	msg, err := wire.DecodeEntry(s.config().Unmarshaller, entry.ID, entry.Values)
	if err != nil {
		s.poisoner.poisonUndecodable(s.ctx, stream, entry, err)
		s.releaseSlots(1)
		return
	}
	pe := &pendingEntry{stream: stream, id: entry.ID}
	s.inflight.track(pe)
	s.ahead.added(1)
	s.queue <- s.newDelivery(pe, msg)
}

func (s *subscription) newDelivery(pe *pendingEntry, msg *message.Message) *delivery {
	d := &delivery{
		info: Delivery{
			Topic:         s.topic,
			Stream:        pe.stream,
			EntryID:       pe.id,
			ConsumerGroup: s.group,
			Consumer:      s.config().Consumer,
			entry:         pe,
			settler:       s.settler,
			msg:           msg,
		},
		entry: pe,
		msg:   msg,
	}
	d.Context, d.cancel = context.WithCancel(s.messageBase)
	msg.SetContext(d)
	return d
}
