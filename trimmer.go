package redrive

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/startstop"
	"github.com/redrive-go/redrive/internal/testsignal"
	"github.com/redrive-go/redrive/internal/wire"
)

// DisableTrimming, set as SubscriberConfig.RetainAcked, keeps every entry of
// the stream, as before trimming existed (Maxlens still applies).
const DisableTrimming time.Duration = -1

// Trimmer defaults.
const (
	// DefaultRetainAcked is how long entries every consumer group has
	// finished with stay in the stream: long enough to inspect or replay what
	// just happened and for a group added a little later with OldestId "0"
	// to see recent history, short enough that a busy topic stays small (at
	// 1,000 messages a second of about 350 bytes, ten minutes is some 200 MB).
	DefaultRetainAcked = 10 * time.Minute
	// DefaultTrimInterval is how often a trimmer runs. One run is one cheap
	// script call (a few commands per consumer group), so many subscribers
	// may run it at once; once a minute is fine-grained enough against
	// DefaultRetainAcked and keeps an idle subscription cheap.
	DefaultTrimInterval = time.Minute
	// DefaultHoldBackLogInterval is the least time between two log lines
	// about a consumer group that holds entries older than the retention
	// window back.
	DefaultHoldBackLogInterval = 5 * time.Minute
)

// unreadCountLimit caps how many unread entries of a group are counted one by
// one on servers that give no lag (Redis 6.2); the count then reads as "at
// least".
const unreadCountLimit = 10000

// TrimmerConfig configures a Trimmer.
type TrimmerConfig struct {
	// Client is the Redis client. Required.
	Client redis.UniversalClient
	// Stream is the topic's stream, such as KeysFor(topic).Stream. Required.
	Stream string
	// RetainAcked is how long entries that every consumer group has finished
	// with are kept. 0 means DefaultRetainAcked; to trim entries as soon as
	// every group is done with them, give a tiny window such as
	// time.Millisecond. Must not be negative: do not run a Trimmer instead.
	RetainAcked time.Duration
	// Interval is how often the trimmer runs. Default DefaultTrimInterval.
	Interval time.Duration
	// HoldBackLogInterval is the least time between two log lines about
	// groups that hold old entries back. Default DefaultHoldBackLogInterval.
	HoldBackLogInterval time.Duration
	// OnTrim, when set, is called with the result of every run. It runs on
	// the trimmer's goroutine, so it must return quickly. Metrics use it.
	OnTrim func(TrimResult)
}

func (c *TrimmerConfig) setDefaults() {
	if c.RetainAcked == 0 {
		c.RetainAcked = DefaultRetainAcked
	}
	if c.Interval == 0 {
		c.Interval = DefaultTrimInterval
	}
	if c.HoldBackLogInterval == 0 {
		c.HoldBackLogInterval = DefaultHoldBackLogInterval
	}
}

// Validate reports the first invalid field.
func (c *TrimmerConfig) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive: TrimmerConfig.Client is nil")
	case c.Stream == "":
		return errors.New("redrive: TrimmerConfig.Stream is empty")
	case c.RetainAcked < 0:
		return fmt.Errorf("redrive: TrimmerConfig.RetainAcked is %s, must be positive", c.RetainAcked)
	case c.Interval < 0:
		return fmt.Errorf("redrive: TrimmerConfig.Interval is %s, must be positive", c.Interval)
	case c.HoldBackLogInterval < 0:
		return fmt.Errorf("redrive: TrimmerConfig.HoldBackLogInterval is %s, must be positive", c.HoldBackLogInterval)
	}
	return nil
}

// TrimResult is what one trim of a stream did and saw.
type TrimResult struct {
	// Stream is the stream.
	Stream string `json:"stream"`
	// Trimmed is the number of entries removed (0 in a dry run).
	Trimmed int64 `json:"trimmed"`
	// TrimBefore is the ID before which entries may be removed: the oldest
	// entry some group still needs, or Cutoff when that is older. "" when
	// nothing may be removed: the stream does not exist or has no consumer
	// group (a fan-out only stream is never trimmed).
	TrimBefore string `json:"trim_before"`
	// Cutoff is now minus the retention window, by the Redis server's clock:
	// entries added after it are kept whatever the groups did.
	Cutoff time.Time `json:"cutoff"`
	// Length is the number of entries left in the stream.
	Length int64 `json:"length"`
	// FirstID is the ID of the oldest entry left, "" when the stream is empty.
	FirstID string `json:"first_id,omitempty"`
	// Groups are the stream's consumer groups, in Redis's order.
	Groups []GroupRetention `json:"groups"`
}

// HoldingBack returns the groups that keep entries older than the retention
// window in the stream.
func (r TrimResult) HoldingBack() []GroupRetention {
	var out []GroupRetention
	for _, g := range r.Groups {
		if g.HoldsBack {
			out = append(out, g)
		}
	}
	return out
}

// GroupRetention is what one consumer group still needs of a stream.
type GroupRetention struct {
	// Group is the consumer group.
	Group string `json:"group"`
	// NeededFrom is the first entry ID the group still needs: its oldest
	// pending entry, or the entry after its last-delivered-id.
	NeededFrom string `json:"needed_from"`
	// LastDeliveredID is the group's last-delivered-id.
	LastDeliveredID string `json:"last_delivered_id"`
	// Pending is the number of entries delivered to the group and not acked.
	Pending int64 `json:"pending"`
	// OldestPendingID is the oldest of them, "" when none is pending.
	OldestPendingID string `json:"oldest_pending_id,omitempty"`
	// Unread is the number of entries not yet delivered to the group, -1
	// when unknown (the server gives no lag and the group holds nothing
	// back, so it was not counted).
	Unread int64 `json:"unread"`
	// UnreadAtLeast is true when Unread was counted one by one up to its
	// limit of 10,000 and stopped there.
	UnreadAtLeast bool `json:"unread_at_least,omitempty"`
	// HoldsBack is true when the stream keeps entries older than the
	// retention window that the group still needs.
	HoldsBack bool `json:"holds_back"`
	// Retained is what the group holds back: its pending and unread entries
	// when HoldsBack, else 0.
	Retained int64 `json:"retained"`
	// HeldSince is when the oldest entry kept for the group was added; the
	// zero time when the group holds nothing back.
	HeldSince time.Time `json:"held_since,omitzero"`
}

// TrimStream removes from stream the entries that every consumer group has
// read and acknowledged and that are older than retainAcked, in one atomic
// script, and reports what each group still needs. With dryRun it only
// reports. A stream without consumer groups is left alone. The Trimmer
// service calls it; tools call it directly for streams no redrive subscriber
// reads.
func TrimStream(ctx context.Context, client redis.Scripter, stream string, retainAcked time.Duration, dryRun bool) (TrimResult, error) {
	if retainAcked < 0 {
		return TrimResult{}, fmt.Errorf("redrive: trim %q: retention %s is negative", stream, retainAcked)
	}
	res, err := scripts.TrimStream.Run(ctx, client, trimArgs(stream, retainAcked, !dryRun))
	return trimResult("trim", stream, res, err)
}

// trimArgs are the arguments of the trim script with the trimmer's limit on
// counting unread entries.
func trimArgs(stream string, retainAcked time.Duration, trim bool) scripts.TrimStreamArgs {
	return scripts.TrimStreamArgs{Stream: stream, RetainAcked: retainAcked, Trim: trim, UnreadCountLimit: unreadCountLimit}
}

// trimResult turns the trim script's reply into a TrimResult; what names the
// operation in errors.
func trimResult(what, stream string, res scripts.TrimStreamReply, err error) (TrimResult, error) {
	if err != nil {
		return TrimResult{}, fmt.Errorf("redrive: %s %q: %w", what, stream, err)
	}
	r := TrimResult{
		Stream:     stream,
		Trimmed:    res.Trimmed,
		TrimBefore: res.MinID,
		Cutoff:     wire.EntryTime(res.Cutoff),
		Length:     res.Length,
		FirstID:    res.FirstID,
		Groups:     make([]GroupRetention, 0, len(res.Groups)),
	}
	for _, rg := range res.Groups {
		g := GroupRetention{
			Group:           rg.Name,
			NeededFrom:      rg.NeededFrom,
			Pending:         rg.Pending,
			OldestPendingID: rg.OldestPendingID,
			Unread:          rg.Unread,
			UnreadAtLeast:   !rg.UnreadExact,
			LastDeliveredID: rg.LastDeliveredID,
		}
		if rg.HeldFrom != "" {
			g.HoldsBack = true
			g.Retained = g.Pending + max(g.Unread, 0)
			g.HeldSince = wire.EntryTime(rg.HeldFrom)
		}
		r.Groups = append(r.Groups, g)
	}
	return r, nil
}

// Trimmer is the service that keeps a topic's stream from growing without
// bound: every Interval it removes the entries that every consumer group on
// the stream (redrive's, watermill-redisstream's or anyone's) has read and
// acknowledged and that are older than RetainAcked, and never one that a
// group still needs (TrimStream). Any number of trimmers may run on the same
// stream, in one process or many.
//
// A group that stopped reading keeps every entry from its position on. The
// trimmer never drops them; it logs the group, how many entries it holds and
// since when, at most every HoldBackLogInterval, and reports it to OnTrim.
//
// Subscribers in a consumer group run a trimmer for their topic by
// themselves (SubscriberConfig.RetainAcked, TrimInterval); run one directly
// when no redrive subscriber reads the stream.
type Trimmer struct {
	base startstop.Base

	config TrimmerConfig
	logger watermill.LoggerAdapter

	// logMu guards lastHoldBackLog: TrimOnce may also be called directly.
	logMu           sync.Mutex
	lastHoldBackLog time.Time

	// testSignals let this package's tests wait on the trimmer's work.
	testSignals trimmerTestSignals
}

// trimmerTestSignals are sent by the trimmer when tests asked for them.
type trimmerTestSignals struct {
	// Trimmed carries the result of every run that succeeded.
	Trimmed testsignal.Signal[TrimResult]
}

// NewTrimmer creates a trimmer. Start runs it.
func NewTrimmer(config TrimmerConfig, logger watermill.LoggerAdapter) (*Trimmer, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Trimmer{
		config: config,
		logger: logger.With(watermill.LogFields{"service": "trimmer", "stream": config.Stream}),
	}, nil
}

// Stop stops the trimmer and waits until its loop has returned. It may be
// called more than once, and does nothing when the trimmer is not running.
func (t *Trimmer) Stop() {
	t.base.Stop()
}

// Start runs the trimmer until ctx ends or Stop is called. The first run is
// one Interval after the start.
func (t *Trimmer) Start(ctx context.Context) error {
	startPeriodic(ctx, &t.base, t.config.Interval, t.logger, "Trimming the stream failed",
		func(ctx context.Context) error {
			_, err := t.TrimOnce(ctx)
			return err
		}, nil)
	return nil
}

// TrimOnce trims the stream once, logs the groups that hold old entries
// back (at most every HoldBackLogInterval) and calls OnTrim. The running
// service calls it every Interval; tests and tools may call it directly.
func (t *Trimmer) TrimOnce(ctx context.Context) (TrimResult, error) {
	r, err := TrimStream(ctx, t.config.Client, t.config.Stream, t.config.RetainAcked, false)
	if err != nil {
		return TrimResult{}, err
	}
	if r.Trimmed > 0 {
		t.logger.Debug("Trimmed the stream", watermill.LogFields{"trimmed": r.Trimmed, "length": r.Length})
	}
	if held := r.HoldingBack(); len(held) > 0 && t.holdBackLogDue() {
		for _, g := range held {
			t.logger.Info("Consumer group holds entries older than the retention window back; they stay until it reads and acks them or the group is deleted", watermill.LogFields{
				"consumer_group":   g.Group,
				"retained_entries": g.Retained,
				"pending":          g.Pending,
				"unread":           g.Unread,
				"oldest_needed_id": g.NeededFrom,
				"oldest_age":       time.Since(g.HeldSince).Round(time.Second).String(),
			})
		}
	}
	if t.config.OnTrim != nil {
		t.config.OnTrim(r)
	}
	t.testSignals.Trimmed.Signal(r)
	return r, nil
}

// holdBackLogDue reports whether HoldBackLogInterval has passed since the
// last hold-back log line, and if so counts this one.
func (t *Trimmer) holdBackLogDue() bool {
	t.logMu.Lock()
	defer t.logMu.Unlock()
	if time.Since(t.lastHoldBackLog) < t.config.HoldBackLogInterval {
		return false
	}
	t.lastHoldBackLog = time.Now()
	return true
}
