package redrive

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/startstop"
	"github.com/redrive-go/redrive/internal/testsignal"
)

// claimer is the service that takes over entries other consumers of the
// group left pending for MaxIdleTime (they died), every ClaimInterval, in
// batches of up to ClaimBatchSize and never more than the free in-flight
// slots. Entries delivered MaxDeliveries times go to the poison stream
// instead: their handler probably kills the process.
type claimer struct {
	startstop.Base
	sub *subscription

	TestSignals claimerTestSignals
}

type claimerTestSignals struct {
	// Claimed carries the number of entries claimed by each pass that claimed any.
	Claimed testsignal.Signal[int]
	// Poisoned carries the ID of each entry poisoned for too many deliveries.
	Poisoned testsignal.Signal[string]
	// Pass is sent after every pass.
	Pass testsignal.Signal[struct{}]
}

func newClaimer(s *subscription) *claimer { return &claimer{sub: s} }

func (c *claimer) Start(ctx context.Context) error {
	// The first pass runs at once: a consumer that joins (after a deploy,
	// say) takes what others gave back or left behind without waiting.
	startPeriodicFrom(ctx, &c.Base, 0, c.sub.config().ClaimInterval, c.sub.logger,
		"Claiming idle pending entries failed", c.claimOnce,
		func(error) { c.TestSignals.Pass.Signal(struct{}{}) })
	return nil
}

// claimOnce runs one pass over the subscription's streams.
func (c *claimer) claimOnce(ctx context.Context) error {
	s := c.sub
	cfg := s.config()
	if s.stalled.Load() {
		// Nobody takes this subscription's messages: what it claimed would
		// only wait, and its own entries given back would bounce back to it.
		return nil
	}
	for _, stream := range s.streams() {
		// Wait for a free slot rather than take only those free right now:
		// the reader holds up to ReadBatchSize slots during each blocking
		// read, so with MaxInFlight <= ReadBatchSize (MaxInFlight 1 in
		// particular) no slot is ever free at the tick and the entries of
		// dead consumers would stay pending forever. Waiters on the slots
		// are served in turn, so the claimer gets the next slot released.
		n := s.waitSlots(ctx, int(cfg.ClaimBatchSize))
		if n == 0 {
			return nil // stopping
		}
		claimed, exceeded, err := c.claim(ctx, stream, n)
		if err != nil {
			s.releaseSlots(n)
			return err
		}
		s.releaseSlots(n - len(claimed))
		for _, entry := range claimed {
			s.accept(stream, entry)
		}
		if len(claimed) > 0 {
			s.logger.Info("Claimed entries of idle consumers", watermill.LogFields{"stream": stream, "count": len(claimed)})
			c.TestSignals.Claimed.Signal(len(claimed))
			if cfg.OnClaim != nil {
				cfg.OnClaim(s.topic, len(claimed))
			}
		}
		for _, e := range exceeded {
			if err := s.poisonCrashLoop(ctx, stream, e.id, e.values, e.deliveries); err != nil {
				return err
			}
			c.TestSignals.Poisoned.Signal(e.id)
		}
	}
	return nil
}

type exceededEntry struct {
	id         string
	deliveries int64
	values     map[string]interface{}
}

func (c *claimer) claim(ctx context.Context, stream string, count int) ([]redis.XMessage, []exceededEntry, error) {
	s := c.sub
	cfg := s.config()
	res, err := scripts.ClaimIdle.Run(ctx, s.client, scripts.ClaimIdleArgs{
		Stream: stream, Group: s.group, Consumer: cfg.Consumer,
		MinIdle: cfg.MaxIdleTime, Count: int64(count), MaxDeliveries: cfg.maxDeliveries(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim idle entries of %q: %w", stream, err)
	}
	s.noteTrimmedAway(stream, int(res.Removed))
	exceeded := make([]exceededEntry, 0, len(res.Exceeded))
	for _, e := range res.Exceeded {
		exceeded = append(exceeded, exceededEntry{id: e.ID, deliveries: e.Deliveries, values: e.Values})
	}
	return res.Claimed, exceeded, nil
}
