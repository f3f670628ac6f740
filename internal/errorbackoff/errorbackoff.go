// Package errorbackoff spaces the attempts of a background loop whose Redis
// calls keep failing (a reader, an acker, a delayed mover), so that a Redis
// that is down or restarting is not hammered and comes back to work at once.
// It is github.com/cenkalti/backoff/v4's ExponentialBackOff doubling from a
// first pause up to a cap, without jitter and without ever giving up.
package errorbackoff

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff gives the pause after each failure of a run of them. The zero
// value is not usable; New makes one. A Backoff is not safe for concurrent
// use: each loop keeps its own.
type Backoff struct {
	exp     backoff.ExponentialBackOff
	failing bool
}

// New returns a Backoff whose first pause is first, doubled after each
// further failure up to max (first is capped at max too).
func New(first, max time.Duration) Backoff {
	return Backoff{exp: backoff.ExponentialBackOff{
		InitialInterval: min(first, max),
		Multiplier:      2,
		MaxInterval:     max,
		MaxElapsedTime:  0, // never give up: the loop runs until it is stopped
		Stop:            backoff.Stop,
		Clock:           backoff.SystemClock,
	}}
}

// Failed returns the pause before the next attempt.
func (b *Backoff) Failed() time.Duration {
	if !b.failing {
		b.failing = true
		b.exp.Reset()
	}
	return b.exp.NextBackOff()
}

// Succeeded ends a run of failures: the next one pauses for the first pause
// again.
func (b *Backoff) Succeeded() {
	b.failing = false
}
