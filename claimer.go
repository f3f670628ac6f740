package redrive

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

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
	startPeriodicFrom(ctx, &c.Base, 0, c.config.ClaimInterval, c.config.Logger,
		"Claiming idle pending entries failed", c.claimOnce,
		func(error) { c.TestSignals.Pass.Signal(struct{}{}) })
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
	res, err := claimScript.Run(ctx, cfg.Client, []string{stream},
		cfg.Group, cfg.Consumer, cfg.MaxIdleTime.Milliseconds(), count, cfg.MaxDeliveries,
	).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("claim idle entries of %q: %w", stream, err)
	}
	if len(res) != 3 {
		return nil, nil, fmt.Errorf("claim idle entries of %q: unexpected reply %v", stream, res)
	}
	claimedRaw, _ := res[0].([]interface{})
	claimed := make([]redis.XMessage, 0, len(claimedRaw))
	for _, raw := range claimedRaw {
		id, values, err := parseEntry(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("claim idle entries of %q: %w", stream, err)
		}
		claimed = append(claimed, redis.XMessage{ID: id, Values: values})
	}
	if removed, _ := res[2].(int64); removed > 0 && cfg.OnTrimmedAway != nil {
		cfg.OnTrimmedAway(stream, int(removed))
	}
	exceededRaw, _ := res[1].([]interface{})
	exceeded := make([]exceededEntry, 0, len(exceededRaw))
	for _, raw := range exceededRaw {
		parts, ok := raw.([]interface{})
		if !ok || len(parts) != 3 {
			return nil, nil, fmt.Errorf("claim idle entries of %q: unexpected entry %v", stream, raw)
		}
		id, _ := parts[0].(string)
		deliveries, _ := parts[1].(int64)
		values, err := parseFields(parts[2])
		if err != nil {
			return nil, nil, fmt.Errorf("claim idle entries of %q: %w", stream, err)
		}
		exceeded = append(exceeded, exceededEntry{id: id, deliveries: deliveries, values: values})
	}
	return claimed, exceeded, nil
}

// parseEntry reads one stream entry from a script reply: {id, {field, value, …}}.
func parseEntry(raw interface{}) (string, map[string]interface{}, error) {
	parts, ok := raw.([]interface{})
	if !ok || len(parts) != 2 {
		return "", nil, fmt.Errorf("unexpected entry %v", raw)
	}
	id, ok := parts[0].(string)
	if !ok {
		return "", nil, fmt.Errorf("unexpected entry ID %v", parts[0])
	}
	values, err := parseFields(parts[1])
	return id, values, err
}

func parseFields(raw interface{}) (map[string]interface{}, error) {
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	list, ok := raw.([]interface{})
	if !ok || len(list)%2 != 0 {
		return nil, fmt.Errorf("unexpected entry fields %v", raw)
	}
	values := make(map[string]interface{}, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok := list[i].(string)
		if !ok {
			return nil, fmt.Errorf("unexpected field name %v", list[i])
		}
		values[k] = list[i+1]
	}
	return values, nil
}
