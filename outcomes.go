package redrive

import (
	"sync"
	"time"
)

// outcomePollInterval bounds how long the outcome watcher waits on the
// oldest message it watches before it looks at the others again. A message
// still out after that gets a goroutine of its own, so a slow handler never
// delays noticing the outcomes of fast ones by more than this.
const outcomePollInterval = time.Millisecond

// outcomeWatcher observes the Acked and Nacked channels of handed-out
// messages. Under load handlers settle messages about in the order they took
// them, so one goroutine waits on the oldest message and, each time it wakes,
// settles the oldest ones that have an outcome, up to the first still out;
// most messages are then settled without a goroutine of their own, several
// per wake-up. When the oldest stays out longer than
// outcomePollInterval, each message still out gets a goroutine of its own
// (awaitOutcome).
//
// The watcher's goroutine starts with the first message handed out and ends
// once reading stopped and nothing is left to watch; it counts in handedOut
// while it runs, so shutdown waits for it as for the messages.
type outcomeWatcher struct {
	mu      sync.Mutex
	added   []*delivery
	running bool
	wake    chan struct{}
}

func newOutcomeWatcher() *outcomeWatcher {
	return &outcomeWatcher{wake: make(chan struct{}, 1)}
}

// watch starts watching d, handed out and counted in handedOut.
func (s *subscription) watch(d *delivery) {
	w := s.outcomes
	w.mu.Lock()
	w.added = append(w.added, d)
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		s.handedOut.Add(1)
		go s.watchOutcomes()
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) watchOutcomes() {
	defer s.handedOut.Done()
	w := s.outcomes
	// watched holds the messages watched, oldest first, from watched[first].
	var watched, taken []*delivery
	first := 0
	timer := time.NewTimer(outcomePollInterval)
	defer timer.Stop()
	for {
		w.mu.Lock()
		taken, w.added = w.added, taken[:0]
		w.mu.Unlock()
		if first > 0 && first >= len(watched)/2 {
			n := copy(watched, watched[first:])
			clear(watched[n:])
			watched, first = watched[:n], 0
		}
		watched = append(watched, taken...)
		clear(taken)

		// Settle the oldest ones that have an outcome; stop at the first
		// still out, so each wake costs what it settles.
		for first < len(watched) && s.settleIfDone(watched[first]) {
			watched[first] = nil
			first++
		}
		if first == len(watched) {
			clear(watched)
			watched, first = watched[:0], 0
			if !s.waitForMessages() {
				return
			}
			continue
		}
		head := watched[first]
		timer.Reset(outcomePollInterval)
		select {
		case <-head.msg.Acked():
		case <-head.msg.Nacked():
		case <-timer.C:
			// The oldest is slow, and may hold up noticing the others:
			// each one still out gets its own goroutine.
			for _, d := range watched[first:] {
				if !s.settleIfDone(d) {
					go s.awaitOutcome(d)
				}
			}
			clear(watched)
			watched, first = watched[:0], 0
		case <-s.stopAll:
			for _, d := range watched[first:] {
				s.abandon(d)
			}
			w.mu.Lock()
			rest := w.added
			w.added = nil
			w.running = false
			w.mu.Unlock()
			for _, d := range rest {
				s.abandon(d)
			}
			return
		}
		timer.Stop()
	}
}

// waitForMessages waits for more messages to watch. False when the goroutine
// should end: reading stopped (or the subscription is closing) and nothing
// is left to watch. A wake-up may be left over from a message the loop
// already took, so only a message actually added ends the wait.
func (s *subscription) waitForMessages() bool {
	w := s.outcomes
	for {
		w.mu.Lock()
		if len(w.added) > 0 {
			w.mu.Unlock()
			return true
		}
		if s.closing.Load() || s.stoppedReading() {
			w.running = false
			w.mu.Unlock()
			return false
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-s.stopReading:
		}
	}
}

// settleIfDone settles d if its message was acked or nacked, and tells
// whether it was.
func (s *subscription) settleIfDone(d *delivery) bool {
	select {
	case <-d.msg.Acked():
		s.outcome(d, true)
		return true
	default:
	}
	select {
	case <-d.msg.Nacked():
		s.outcome(d, false)
		return true
	default:
	}
	return false
}

// awaitOutcome waits for the outcome of one slow message.
func (s *subscription) awaitOutcome(d *delivery) {
	select {
	case <-d.msg.Acked():
		s.outcome(d, true)
	case <-d.msg.Nacked():
		s.outcome(d, false)
	case <-s.stopAll:
		s.abandon(d)
	}
}

// outcome settles an acked message, or has a nacked one delivered again
// after NackResendSleep. It ends d's count in handedOut.
func (s *subscription) outcome(d *delivery, acked bool) {
	d.cancel()
	if acked || d.entry.settled.Load() {
		// A nacked entry that is settled was already requeued or poisoned
		// in Redis: nothing to redeliver.
		s.settle(d.entry)
		s.outcomeDone()
		return
	}
	d.entry.out.Store(false)
	go s.redeliverNacked(d)
}

func (s *subscription) redeliverNacked(d *delivery) {
	defer s.outcomeDone()
	if sleep := s.config().NackResendSleep; sleep > 0 && !s.sleep(sleep) {
		return
	}
	if s.stoppedReading() {
		return
	}
	s.ahead.added(1)
	s.redeliver <- s.newDelivery(d.entry, d.msg.Copy())
}

// abandon drops a message still out when CloseTimeout ran out: its entry
// goes back to the group at close.
func (s *subscription) abandon(d *delivery) {
	d.cancel()
	s.outcomeDone()
}

// outcomeDone ends one handed-out message's count in handedOut.
func (s *subscription) outcomeDone() {
	s.handedOutCount.Add(-1)
	if s.closing.Load() {
		select {
		case s.settled <- struct{}{}:
		default:
		}
	}
	s.handedOut.Done()
}
