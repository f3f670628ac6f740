package redrive

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// dispatchLoop hands queued messages to the channel one at a time, in the
// order read; redeliveries after a nack go first. It measures how long each
// message waits for a handler to take it (the read-ahead follows that), and
// when one waits MaxIdleTime/2 the reader has stopped taking messages: it
// gives that one and every queued entry back to the group.
func (s *subscription) dispatchLoop() {
	defer s.dispatching.Done()
	var (
		giveBack  <-chan time.Time
		stallTime *time.Timer
		// armed tells whether stallTime runs. It is started for the first
		// offer that waits and left running across later ones; when it
		// fires, the offer then waiting is checked and the timer started
		// again for what it has left. So handing out costs no timer
		// operation per message.
		armed bool
	)
	after := s.giveBackAfter()
	if after > 0 {
		stallTime = time.NewTimer(after)
		stallTime.Stop()
		defer stallTime.Stop()
		giveBack = stallTime.C
	}
	for {
		var d *delivery
		select {
		case d = <-s.redeliver:
		default:
			select {
			case d = <-s.queue:
			default:
				select {
				case d = <-s.redeliver:
				case d = <-s.queue:
				case <-s.stopReading:
					return
				}
			}
		}
		select {
		case s.out <- d.msg:
			s.handOut(d, 0)
			continue
		default:
		}
		offered := time.Now()
		if stallTime != nil && !armed {
			stallTime.Reset(after)
			armed = true
		}
	offer:
		for {
			select {
			case s.out <- d.msg:
				s.handOut(d, time.Since(offered))
				break offer
			case <-giveBack:
				armed = false
				if waited := time.Since(offered); waited < after {
					stallTime.Reset(after - waited)
					armed = true
					continue
				}
				s.ahead.stalled(time.Since(offered))
				s.stalled.Store(true)
				s.giveBackQueued(d)
				break offer
			case <-s.stopReading:
				d.cancel()
				return
			}
		}
	}
}

// giveBackAfter is how long a message may wait for a handler before the
// entries waiting in this subscription go back to the group; 0 (never) in
// fan-out, where there is no group to take them, and with MaxInFlight 1,
// whose stream order a given-back entry would break.
func (s *subscription) giveBackAfter() time.Duration {
	if s.group == "" || s.config().MaxInFlight == 1 {
		return 0
	}
	return s.config().MaxIdleTime / 2
}

func (s *subscription) handOut(d *delivery, waited time.Duration) {
	d.entry.handedOut = d.msg
	d.entry.out.Store(true)
	s.handedOut.Add(1)
	s.handedOutCount.Add(1)
	s.ahead.taken(waited)
	if s.stalled.Load() {
		// Checked first: a store per message would bounce the flag's cache
		// line between cores for nothing.
		s.stalled.Store(false)
	}
	s.watch(d)
}

// giveBackQueued gives held, which no handler took, and every entry queued
// behind it back to the group.
func (s *subscription) giveBackQueued(held *delivery) {
	entries := []*pendingEntry{held.entry}
	held.cancel()
	for {
		var d *delivery
		select {
		case d = <-s.redeliver:
		case d = <-s.queue:
		default:
			s.ahead.removed(len(entries))
			s.logger.Info("Nobody took messages for MaxIdleTime/2; giving the waiting entries back to the group", watermill.LogFields{"count": len(entries)})
			s.giveBack(entries)
			return
		}
		d.cancel()
		entries = append(entries, d.entry)
	}
}
