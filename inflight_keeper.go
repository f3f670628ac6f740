package redrive

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/startstop"
	"github.com/redrive-go/redrive/internal/testsignal"
)

// minKeeperInterval keeps a tiny MaxIdleTime from turning the keeper into a
// busy loop.
const minKeeperInterval = 10 * time.Millisecond

// inflightKeeper is the service that keeps this consumer's in-flight entries
// fresh (idle time 0) every MaxIdleTime/3, so a handler slower than
// MaxIdleTime keeps its message and no other consumer claims it and runs it
// a second time. At shutdown it releases what was not settled, so other
// consumers claim it at their next pass instead of after MaxIdleTime.
type inflightKeeper struct {
	startstop.Base
	config inflightKeeperConfig
	held   heldEntries

	TestSignals inflightKeeperTestSignals
}

// inflightKeeperConfig is what the in-flight keeper needs.
type inflightKeeperConfig struct {
	Client redis.UniversalClient
	// Topic names the wake-up channel on which given-back entries are
	// announced to the group's claimers in every process.
	Topic    string
	Group    string
	Consumer string
	// MaxIdleTime is SubscriberConfig's: refreshes come three times within
	// it, and released entries are marked idle for it.
	MaxIdleTime time.Duration
	Logger      watermill.LoggerAdapter
}

// heldEntries lists the entries a subscription holds (read, not yet settled
// or given back), by stream. The subscription's inflightEntries implement it.
type heldEntries interface {
	ids() map[string][]string
}

type inflightKeeperTestSignals struct {
	// Refreshed carries the number of entries refreshed by each pass.
	Refreshed testsignal.Signal[int]
}

// Init enables every signal for the test tb.
func (ts *inflightKeeperTestSignals) Init(tb testsignal.TB) {
	ts.Refreshed.Init(tb)
}

func newInflightKeeper(config inflightKeeperConfig, held heldEntries) *inflightKeeper {
	return &inflightKeeper{config: config, held: held}
}

func (k *inflightKeeper) Start(ctx context.Context) error {
	var refreshed int
	startPeriodic(ctx, &k.Base, max(k.config.MaxIdleTime/3, minKeeperInterval), k.config.Logger,
		"Refreshing in-flight entries failed",
		func(ctx context.Context) (err error) {
			refreshed, err = k.setIdle(ctx, 0, k.held.ids())
			return err
		},
		func(err error) {
			if err == nil {
				k.TestSignals.Refreshed.Signal(refreshed)
			}
		})
	return nil
}

// releaseTimeout bounds the round trip that gives entries back at shutdown.
const releaseTimeout = 5 * time.Second

// releaseAll marks every entry still held as idle for MaxIdleTime, so the
// claimers of other consumers take it at once.
func (k *inflightKeeper) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	n, err := k.giveBack(ctx, k.held.ids())
	if err != nil {
		k.config.Logger.Error("Could not release unsettled entries; others claim them after MaxIdleTime", err, nil)
		return
	}
	if n > 0 {
		k.config.Logger.Info("Released unsettled entries to other consumers", watermill.LogFields{"count": n})
	}
}

// giveBack marks the entries ids (by stream) that this consumer still owns
// idle for MaxIdleTime, so they are claimable at once, and asks the group's
// claimers in every process to claim now rather than at their next
// ClaimInterval. It returns how many it gave back.
func (k *inflightKeeper) giveBack(ctx context.Context, ids map[string][]string) (int, error) {
	n, err := k.setIdle(ctx, k.config.MaxIdleTime, ids)
	if n > 0 && k.config.Topic != "" {
		if err := announceClaim(ctx, k.config.Client, k.config.Topic, k.config.Group).Err(); err != nil {
			k.config.Logger.Debug("Could not ask other consumers to claim given-back entries; they claim them at their next pass", watermill.LogFields{"err": err.Error()})
		}
	}
	return n, err
}

// setIdle sets the idle time of the entries ids (by stream) that this
// consumer still owns, and returns how many it owned.
func (k *inflightKeeper) setIdle(ctx context.Context, idle time.Duration, ids map[string][]string) (int, error) {
	total := 0
	for stream, ids := range ids {
		if len(ids) == 0 {
			continue
		}
		lost, err := scripts.SetInflightIdle.Run(ctx, k.config.Client, scripts.SetInflightIdleArgs{
			Stream: stream, Group: k.config.Group, Consumer: k.config.Consumer, Idle: idle, IDs: ids,
		})
		if err != nil {
			return total, fmt.Errorf("set idle time of in-flight entries of %q: %w", stream, err)
		}
		total += len(ids) - len(lost)
		if len(lost) > 0 && idle == 0 {
			k.config.Logger.Info("In-flight entries were taken by another consumer or settled meanwhile", watermill.LogFields{"stream": stream, "count": len(lost)})
		}
	}
	return total, nil
}
