package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/wire"
	"github.com/redrive-go/redrive/middleware"
)

// Outcome statuses of a requeue or a purge, per message.
const (
	// StatusRequeued: the message is in its target and gone from the
	// poison stream.
	StatusRequeued = "requeued"
	// StatusWouldRequeue: a dry run found the message would be requeued.
	StatusWouldRequeue = "would-requeue"
	// StatusPurged: the message was deleted from the poison stream.
	StatusPurged = "purged"
	// StatusWouldPurge: a dry run found the message would be purged.
	StatusWouldPurge = "would-purge"
	// StatusSkipped: the message cannot be requeued (see Note); it stays in
	// the poison stream.
	StatusSkipped = "skipped"
	// StatusGone: the entry disappeared between reading and moving it
	// (another requeue or purge took it); nothing was written.
	StatusGone = "gone"
	// StatusFailed: Redis refused to write or delete this message (see
	// Note); it stays in the poison stream unless Note says otherwise.
	StatusFailed = "failed"
)

// Progress reports how far a long operation got. It is passed to the
// callback after each batch.
type Progress struct {
	// Total is how many entries the operation will look at, at most: the
	// length of the stream or set when it started, or the number of IDs.
	Total int `json:"total"`
	// Scanned is how many entries it looked at so far.
	Scanned int `json:"scanned"`
	// Matched is how many of them were selected.
	Matched int `json:"matched"`
	// Done is how many were requeued, purged or run (or would be, in a dry
	// run).
	Done int `json:"done"`
	// Skipped is how many selected ones could not be handled.
	Skipped int `json:"skipped"`
}

// ProgressFunc receives progress reports. It runs on the caller's goroutine
// between batches; a slow callback slows the operation.
type ProgressFunc func(Progress)

// RequeueOptions tunes RequeuePoisoned.
type RequeueOptions struct {
	// DryRun reports what would happen without changing anything.
	DryRun bool
	// Group, when set, sends every selected message to this consumer
	// group's retry stream on its original topic, whatever its metadata
	// says.
	Group string
	// ToStream sends every selected message to its original topic's stream,
	// where every consumer group sees it again, even when the group that
	// failed on it is known.
	ToStream bool
	// Progress, when set, is called after each batch.
	Progress ProgressFunc
}

// Outcome is what happened (or, in a dry run, would happen) to one selected
// message.
type Outcome struct {
	// ID is the entry's ID in the poison stream.
	ID string `json:"id"`
	// UUID is the message UUID.
	UUID string `json:"uuid"`
	// OriginalTopic is the topic it was poisoned from.
	OriginalTopic string `json:"original_topic,omitempty"`
	// Reason is why it was poisoned.
	Reason string `json:"reason,omitempty"`
	// Group is the consumer group it is requeued for; empty when it goes to
	// the topic's stream, for every group.
	Group string `json:"group,omitempty"`
	// Target is the stream it is requeued to.
	Target string `json:"target,omitempty"`
	// NewID is its entry ID in Target.
	NewID string `json:"new_id,omitempty"`
	// Status is one of the Status constants.
	Status string `json:"status"`
	// Note explains a skip, or warns (for example that the group does not
	// exist yet).
	Note string `json:"note,omitempty"`
}

// RequeueResult sums up a requeue.
type RequeueResult struct {
	ChangeResult
	// Requeued is how many were requeued (or would be, in a dry run; the
	// JSON then names it would_requeue).
	Requeued int `json:"requeued"`
}

// requeueItem is a message ready to be written back.
type requeueItem struct {
	out    *Outcome
	target string
	fields map[string]interface{}
	// marker is the idempotency key of a cross-slot requeue.
	marker string
}

// RequeuePoisoned sends the selected messages of a poison stream back to
// their original topic: to the private retry stream of the consumer group
// that failed on them when it is known (so only that group sees them again),
// else to the topic's stream. Their retry state is reset (see the package
// documentation), and each message moves atomically. It works in batches of
// Config.BatchSize and returns what it did even when it stops on an error or
// a cancelled ctx. An empty Selector is refused.
func (a *Admin) RequeuePoisoned(ctx context.Context, poisonStream string, sel Selector, opts RequeueOptions) (RequeueResult, error) {
	res := RequeueResult{ChangeResult: ChangeResult{Stream: poisonStream, DryRun: opts.DryRun, Messages: []Outcome{}}}
	if opts.Group != "" && opts.ToStream {
		return res, errors.New("redrive/admin: RequeueOptions has both Group and ToStream; give one")
	}
	now := time.Now()
	groups := groupCache{admin: a, groups: map[string]map[string]bool{}}
	err := a.changePoison(ctx, poisonChange{op: "requeue", done: "requeued", sel: sel, now: now, progress: opts.Progress,
		batch: func(batch []PoisonedMessage, outs []Outcome) error {
			var items []requeueItem
			for i := range batch {
				out := &outs[i]
				item, err := a.planRequeue(ctx, poisonStream, &batch[i], opts, &groups, now, out)
				if err != nil {
					return err
				}
				if out.Status == StatusSkipped {
					continue
				}
				if opts.DryRun {
					out.Status = StatusWouldRequeue
					continue
				}
				items = append(items, item)
			}
			return a.requeueBatch(ctx, poisonStream, items)
		}}, &res.ChangeResult, &res.Requeued)
	return res, err
}

// planRequeue fills out with where m goes, and returns what to write there.
// It sets out.Status to StatusSkipped when m cannot be requeued.
func (a *Admin) planRequeue(ctx context.Context, poisonStream string, m *PoisonedMessage, opts RequeueOptions, groups *groupCache, now time.Time, out *Outcome) (requeueItem, error) {
	*out = Outcome{ID: m.ID, UUID: m.UUID, OriginalTopic: m.OriginalTopic, Reason: m.Reason}
	skip := func(note string) (requeueItem, error) {
		out.Status, out.Note = StatusSkipped, note
		return requeueItem{}, nil
	}
	if m.msg == nil {
		return skip("the poison entry cannot be decoded: " + m.DecodeError)
	}
	if !m.HasPoisonMetadata() {
		return skip(NoteNotPoisoned)
	}
	if m.OriginalTopic == "" {
		return skip("original topic unknown: no " + wmiddleware.PoisonedTopicKey + " metadata")
	}
	keys := redrive.KeysFor(m.OriginalTopic)
	switch {
	case opts.ToStream:
	case opts.Group != "":
		out.Group = opts.Group
		ok, err := groups.readsRetries(ctx, m.OriginalTopic, opts.Group)
		if err != nil {
			return requeueItem{}, err
		}
		if !ok {
			out.Note = "consumer group " + opts.Group + " does not read a retry stream of this topic now; the message waits there until it subscribes with redrive"
		}
	default:
		group, note, err := groups.resolve(ctx, m)
		if err != nil {
			return requeueItem{}, err
		}
		out.Group, out.Note = group, note
	}
	out.Target = keys.Stream
	if out.Group != "" {
		out.Target = keys.GroupRetry(out.Group)
	}

	var fields map[string]interface{}
	if m.Undecodable {
		// The original entry could not be decoded, so its fields go back as
		// they were: a fixed Unmarshaller may read them now, and an unfixed
		// one poisons them again.
		raw, _ := m.fields[redrive.RawFieldsField].(string)
		var values map[string]interface{}
		if err := msgpack.Unmarshal([]byte(raw), &values); err != nil || len(values) == 0 {
			return skip("the original fields of this undecodable entry cannot be read")
		}
		fields = make(map[string]interface{}, len(values))
		for k, v := range values {
			fields[k] = rawString(v)
		}
		if out.Note == "" {
			out.Note = "undecodable entry: its original fields are written back unchanged"
		}
	} else {
		msg := resetForRequeue(m.msg, now)
		var err error
		fields, err = a.config.Marshaller.Marshal(m.OriginalTopic, msg)
		if err != nil {
			return skip("cannot marshal the message: " + err.Error())
		}
	}
	item := requeueItem{out: out, target: out.Target, fields: fields}
	if !a.sameSlot(poisonStream, out.Target) {
		item.marker = wire.AdminKey(keys.Topic, "requeued:"+poisonStream+":"+m.ID)
	}
	return item, nil
}

// resetForRequeue returns a copy of msg with a fresh retry state: the retry
// count, failure times, last error and poison metadata removed, the history
// kept, and the requeue recorded.
func resetForRequeue(msg *message.Message, now time.Time) *message.Message {
	out := msg.Copy()
	middleware.ClearRetryState(out.Metadata)
	count, _ := strconv.Atoi(msg.Metadata.Get(MetadataRequeueCount))
	out.Metadata.Set(MetadataRequeueCount, strconv.Itoa(count+1))
	out.Metadata.Set(MetadataRequeuedAt, now.UTC().Format(time.RFC3339Nano))
	return out
}

// requeueBatch writes items to their targets and deletes them from the
// poison stream, filling in each outcome.
func (a *Admin) requeueBatch(ctx context.Context, poisonStream string, items []requeueItem) error {
	var atomic, marked []requeueItem
	for _, it := range items {
		if it.marker == "" {
			atomic = append(atomic, it)
		} else {
			marked = append(marked, it)
		}
	}
	if len(atomic) > 0 {
		if err := a.requeueAtomic(ctx, poisonStream, atomic); err != nil {
			return err
		}
	}
	if len(marked) > 0 {
		if err := a.requeueMarked(ctx, poisonStream, marked); err != nil {
			return err
		}
	}
	return nil
}

// requeueAtomic moves items with one call of the requeue_poisoned script.
func (a *Admin) requeueAtomic(ctx context.Context, poisonStream string, items []requeueItem) error {
	args := scripts.RequeuePoisonedArgs{PoisonStream: poisonStream}
	for _, it := range items {
		args.Messages = append(args.Messages, scripts.PoisonedMessage{PoisonID: it.out.ID, Target: it.target, Fields: it.fields})
	}
	outcomes, err := scripts.RequeuePoisoned.Run(ctx, a.client, args)
	if err != nil {
		return fmt.Errorf("move %d messages: %w", len(items), err)
	}
	var firstErr error
	for i, it := range items {
		switch o := outcomes[i]; {
		case o.Gone:
			it.out.Status, it.out.Note = StatusGone, "no longer in the poison stream"
		case o.AddError != "":
			// The script caught Redis refusing this XADD (a target key of
			// another type, say): the message stayed in the poison stream.
			it.out.Status, it.out.Note = StatusFailed, "add to "+it.target+": "+o.AddError
			if firstErr == nil {
				firstErr = fmt.Errorf("add message %s to %q: %s", it.out.ID, it.target, o.AddError)
			}
		default:
			it.out.Status, it.out.NewID = StatusRequeued, o.NewID
		}
	}
	return firstErr
}

// requeueMarked moves items whose target is in another cluster slot than
// the poison stream: first each is added to its target with an idempotency
// marker (one script per item, pipelined), then the poison entries of those
// added are deleted. See internal/scripts/requeue_poisoned_cross_slot.lua.
func (a *Admin) requeueMarked(ctx context.Context, poisonStream string, items []requeueItem) error {
	// Entries taken by another operator since they were read are left alone,
	// so a requeue racing a purge does not bring back what was purged. The
	// window between this check and the write is what remains of that race.
	pipe := a.client.Pipeline()
	exists := make([]*redis.XMessageSliceCmd, len(items))
	for i, it := range items {
		exists[i] = pipe.XRange(ctx, poisonStream, it.out.ID, it.out.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("check poison entries: %w", err)
	}
	var present []requeueItem
	for i, it := range items {
		if len(exists[i].Val()) == 0 {
			it.out.Status, it.out.Note = StatusGone, "no longer in the poison stream"
			continue
		}
		present = append(present, it)
	}
	if len(present) == 0 {
		return nil
	}

	pipe = a.client.Pipeline()
	cmds := make([]*scripts.Cmd[string], len(present))
	for i, it := range present {
		cmds[i] = scripts.RequeuePoisonedCrossSlot.Queue(ctx, pipe, a.crossSlotArgs(it))
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var added []requeueItem
	var firstErr error
	for i, it := range present {
		id, err := cmds[i].Reply()
		if redisinfo.IsNoScript(err) {
			// The node had not loaded the script (first use, restart or
			// failover): Run loads it.
			id, err = scripts.RequeuePoisonedCrossSlot.Run(ctx, a.client, a.crossSlotArgs(it))
		}
		if err != nil {
			it.out.Status, it.out.Note = StatusFailed, "add to "+it.target+": "+err.Error()
			if firstErr == nil {
				firstErr = fmt.Errorf("add message %s to %q: %w", it.out.ID, it.target, err)
			}
			continue
		}
		it.out.NewID = id
		added = append(added, it)
	}
	if len(added) > 0 {
		ids := make([]string, len(added))
		for i, it := range added {
			ids[i] = it.out.ID
		}
		if err := a.client.XDel(ctx, poisonStream, ids...).Err(); err != nil {
			// Added and still poisoned: in both places until the same
			// requeue runs again, which the markers make safe.
			for _, it := range added {
				it.out.Status = StatusFailed
				it.out.Note = "added to the target but not yet deleted from the poison stream; run the same requeue again to finish it without a second copy"
			}
			return fmt.Errorf("delete %d requeued messages from the poison stream: %w", len(ids), err)
		}
		for _, it := range added {
			it.out.Status = StatusRequeued
		}
	}
	return firstErr
}

// crossSlotArgs are the arguments of the first step of a requeue of it
// between two cluster slots.
func (a *Admin) crossSlotArgs(it requeueItem) scripts.RequeuePoisonedCrossSlotArgs {
	return scripts.RequeuePoisonedCrossSlotArgs{Target: it.target, Marker: it.marker, MarkerTTL: a.config.RequeueMarkerTTL, Fields: it.fields}
}

// groupCache finds which consumer group a poisoned message belongs to,
// reading each stream's groups once per operation.
type groupCache struct {
	admin  *Admin
	groups map[string]map[string]bool
}

// has reports whether group is a consumer group of stream.
func (c *groupCache) has(ctx context.Context, stream, group string) (bool, error) {
	gs, ok := c.groups[stream]
	if !ok {
		infos, err := c.admin.client.XInfoGroups(ctx, stream).Result()
		if err != nil && !redisinfo.IsNoSuchKey(err) {
			return false, fmt.Errorf("read consumer groups of %q: %w", stream, err)
		}
		gs = make(map[string]bool, len(infos))
		for _, g := range infos {
			gs[g.Name] = true
		}
		c.groups[stream] = gs
	}
	return gs[group], nil
}

// readsRetries reports whether group consumes topic through a redrive
// Subscriber, which creates the group on its retry stream too. A group of
// another adapter (watermill-redisstream during a migration) never reads a
// retry stream, so a message sent there would wait forever.
func (c *groupCache) readsRetries(ctx context.Context, topic, group string) (bool, error) {
	onTopic, err := c.has(ctx, topic, group)
	if err != nil || !onTopic {
		return false, err
	}
	return c.has(ctx, redrive.KeysFor(topic).GroupRetry(group), group)
}

// resolve returns the group m is requeued for ("" for the topic's stream),
// and a note for the operator.
func (c *groupCache) resolve(ctx context.Context, m *PoisonedMessage) (group, note string, err error) {
	if m.ConsumerGroup != "" {
		// The Subscriber names the group itself: trust it even when the
		// group is gone for now, as its retry stream keeps the message
		// until the group subscribes again (and no other group wants it).
		ok, err := c.readsRetries(ctx, m.OriginalTopic, m.ConsumerGroup)
		if err != nil {
			return "", "", err
		}
		if !ok {
			note = "consumer group " + m.ConsumerGroup + " does not exist on the topic now; the message waits in its retry stream until it subscribes"
		}
		return m.ConsumerGroup, note, nil
	}
	for _, candidate := range []string{m.Handler, m.Subscriber} {
		if candidate == "" {
			continue
		}
		ok, err := c.readsRetries(ctx, m.OriginalTopic, candidate)
		if err != nil {
			return "", "", err
		}
		if ok {
			return candidate, "", nil
		}
		if onTopic, _ := c.has(ctx, m.OriginalTopic, candidate); onTopic {
			return "", "group " + candidate + " reads no retry stream (not a redrive subscriber): to the topic's stream, where every group sees it again", nil
		}
	}
	return "", "consumer group unknown: to the topic's stream, where every group sees it again", nil
}

// PurgeOptions tunes PurgePoisoned.
type PurgeOptions struct {
	// DryRun reports what would be deleted without deleting it.
	DryRun bool
	// Force purges entries that carry no poison metadata when they were
	// chosen by All or OlderThan. By default they are skipped: they are
	// ordinary messages, and the stream is probably a live topic given by
	// mistake. Entries chosen by their IDs are purged either way.
	Force bool
	// Progress, when set, is called after each batch.
	Progress ProgressFunc
}

// PurgeResult sums up a purge.
type PurgeResult struct {
	ChangeResult
	// Purged is how many were deleted (or would be, in a dry run; the JSON
	// then names it would_purge).
	Purged int `json:"purged"`
}

// PurgePoisoned deletes the selected messages from a poison stream, for
// good. It takes the same selectors as RequeuePoisoned and refuses an empty
// one. It works in batches and returns what it did even when it stops early.
func (a *Admin) PurgePoisoned(ctx context.Context, poisonStream string, sel Selector, opts PurgeOptions) (PurgeResult, error) {
	res := PurgeResult{ChangeResult: ChangeResult{Stream: poisonStream, DryRun: opts.DryRun, Messages: []Outcome{}}}
	err := a.changePoison(ctx, poisonChange{op: "purge", done: "purged", sel: sel, now: time.Now(), progress: opts.Progress,
		batch: func(batch []PoisonedMessage, outs []Outcome) error {
			var toPurge []*Outcome
			for i, m := range batch {
				out := &outs[i]
				*out = Outcome{ID: m.ID, UUID: m.UUID, OriginalTopic: m.OriginalTopic, Reason: m.Reason, Status: StatusWouldPurge}
				if !opts.Force && len(sel.IDs) == 0 && !m.HasPoisonMetadata() {
					out.Status, out.Note = StatusSkipped, NoteNotPoisoned
				} else {
					toPurge = append(toPurge, out)
				}
			}
			if opts.DryRun || len(toPurge) == 0 {
				return nil
			}
			return a.purgeBatch(ctx, poisonStream, toPurge)
		}}, &res.ChangeResult, &res.Purged)
	return res, err
}

// purgeBatch deletes the entries of outs, one XDEL each in one round trip, so
// each outcome tells whether this purge deleted it.
func (a *Admin) purgeBatch(ctx context.Context, poisonStream string, outs []*Outcome) error {
	pipe := a.client.Pipeline()
	cmds := make([]*redis.IntCmd, len(outs))
	for i := range outs {
		cmds[i] = pipe.XDel(ctx, poisonStream, outs[i].ID)
	}
	_, err := pipe.Exec(ctx)
	for i := range outs {
		switch n, cmdErr := cmds[i].Result(); {
		case cmdErr != nil:
			outs[i].Status, outs[i].Note = StatusFailed, cmdErr.Error()
		case n == 1:
			outs[i].Status = StatusPurged
		default:
			outs[i].Status, outs[i].Note = StatusGone, "no longer in the poison stream"
		}
	}
	if err != nil {
		return fmt.Errorf("delete %d entries: %w", len(outs), err)
	}
	return nil
}
