package redrive

import (
	"context"
	"fmt"
	"sync"
	"time"

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
	config   claimerConfig
	target   claimTarget
	poisoner crashLoopPoisoner
	// firstPassOnce closes FirstPassDone.
	firstPassOnce sync.Once

	TestSignals claimerTestSignals
}

// claimerConfig is what the claimer needs.
type claimerConfig struct {
	Client  redis.UniversalClient
	Topic   string
	Streams []string
	Group   string
	// Consumer is this subscriber: claimed entries become its own.
	Consumer string
	// MaxIdleTime, MaxDeliveries (0: no limit), ClaimBatchSize and
	// ClaimInterval are SubscriberConfig's.
	MaxIdleTime    time.Duration
	MaxDeliveries  int64
	ClaimBatchSize int64
	ClaimInterval  time.Duration
	OnClaim        func(topic string, n int)
	// OnTrimmedAway is told of pending entries found deleted from stream
	// (acked away by the claim).
	OnTrimmedAway func(stream string, n int)
	// StartAfter, when set, holds the first pass back until it is closed:
	// the reader closes it once it has read this consumer's own pending
	// entries, which would otherwise include entries claimed meanwhile and
	// deliver them a second time.
	StartAfter <-chan struct{}
	// FirstPassDone, when set, is closed after the first pass. The reader
	// waits for it before its first blocking read: the pass needs in-flight
	// slots, and taking them from a blocking read means cutting it short,
	// which at start, with entries waiting, would lose a reply.
	FirstPassDone chan struct{}
	Logger        watermill.LoggerAdapter
}

// claimTarget is the subscription the claimer claims for: it takes and
// gives back in-flight slots and takes the claimed entries in. The
// subscription implements it.
type claimTarget interface {
	// handlersStalled tells whether nobody takes the subscription's
	// messages (the dispatcher gave entries back).
	handlersStalled() bool
	// waitSlots waits for one free in-flight slot, then takes up to want-1
	// more that are free; 0 when reading stops or ctx ends.
	waitSlots(ctx context.Context, want int) int
	releaseSlots(n int)
	// accept takes an entry that holds a slot.
	accept(stream string, entry redis.XMessage)
}

// crashLoopPoisoner moves entries delivered MaxDeliveries times to the
// poison stream; the poisoner implements it.
type crashLoopPoisoner interface {
	poisonCrashLoop(ctx context.Context, stream, id string, values map[string]interface{}, delivered int64) error
}

type claimerTestSignals struct {
	// Claimed carries the number of entries claimed by each pass that claimed any.
	Claimed testsignal.Signal[int]
	// Poisoned carries the ID of each entry poisoned for too many deliveries.
	Poisoned testsignal.Signal[string]
	// Pass is sent after every pass.
	Pass testsignal.Signal[struct{}]
}

// Init enables every signal for the test tb.
func (ts *claimerTestSignals) Init(tb testsignal.TB) {
	ts.Claimed.Init(tb)
	ts.Poisoned.Init(tb)
	ts.Pass.Init(tb)
}

func newClaimer(config claimerConfig, target claimTarget, poisoner crashLoopPoisoner) *claimer {
	return &claimer{config: config, target: target, poisoner: poisoner}
}

func (c *claimer) Start(ctx context.Context) error {
	// The first pass runs at once: a consumer that joins (after a deploy,
	// say) takes what others gave back or left behind without waiting.
	// A consumer that gives entries back asks for a pass at once (a claim
	// wake-up), so they wait for no ClaimInterval.
	var claimWakeups *passTrigger
	if c.config.Topic != "" {
		claimWakeups = &passTrigger{registry: processClaimWakeups, key: claimWakeupKey(KeysFor(c.config.Topic).wakeupChannel(), c.config.Group)}
	}
	startPeriodicFrom(ctx, &c.Base, c.config.StartAfter, claimWakeups, 0, c.config.ClaimInterval, c.config.Logger,
		"Claiming idle pending entries failed", c.claimOnce,
		func(error) {
			c.TestSignals.Pass.Signal(struct{}{})
			if c.config.FirstPassDone != nil {
				c.firstPassOnce.Do(func() { close(c.config.FirstPassDone) })
			}
		})
	return nil
}

// claimOnce runs one pass over the subscription's streams.
func (c *claimer) claimOnce(ctx context.Context) error {
	target := c.target
	cfg := c.config
	if target.handlersStalled() {
		// Nobody takes this subscription's messages: what it claimed would
		// only wait, and its own entries given back would bounce back to it.
		return nil
	}
	for _, stream := range cfg.Streams {
		// Wait for a free slot rather than take only those free right now:
		// the reader holds up to ReadBatchSize slots during each blocking
		// read, so with MaxInFlight <= ReadBatchSize (MaxInFlight 1 in
		// particular) no slot is ever free at the tick and the entries of
		// dead consumers would stay pending forever. Waiters on the slots
		// are served in turn, so the claimer gets the next slot released.
		n := target.waitSlots(ctx, int(cfg.ClaimBatchSize))
		if n == 0 {
			return nil // stopping
		}
		claimed, exceeded, err := c.claim(ctx, stream, n)
		if err != nil {
			target.releaseSlots(n)
			return err
		}
		target.releaseSlots(n - len(claimed))
		for _, entry := range claimed {
			target.accept(stream, entry)
		}
		if len(claimed) > 0 {
			cfg.Logger.Info("Claimed entries of idle consumers", watermill.LogFields{"stream": stream, "count": len(claimed)})
			c.TestSignals.Claimed.Signal(len(claimed))
			if cfg.OnClaim != nil {
				cfg.OnClaim(cfg.Topic, len(claimed))
			}
		}
		for _, e := range exceeded {
			if err := c.poisoner.poisonCrashLoop(ctx, stream, e.id, e.values, e.deliveries); err != nil {
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
	cfg := c.config
	res, err := scripts.ClaimIdle.Run(ctx, cfg.Client, scripts.ClaimIdleArgs{
		Stream: stream, Group: cfg.Group, Consumer: cfg.Consumer,
		MinIdle: cfg.MaxIdleTime, Count: int64(count), MaxDeliveries: cfg.MaxDeliveries,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim idle entries of %q: %w", stream, err)
	}
	if res.Removed > 0 && cfg.OnTrimmedAway != nil {
		cfg.OnTrimmedAway(stream, int(res.Removed))
	}
	exceeded := make([]exceededEntry, 0, len(res.Exceeded))
	for _, e := range res.Exceeded {
		exceeded = append(exceeded, exceededEntry{id: e.ID, deliveries: e.Deliveries, values: e.Values})
	}
	return res.Claimed, exceeded, nil
}
