package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
)

// TrimOptions configures TrimTopic.
type TrimOptions struct {
	// RetainAcked is how long entries every consumer group finished with are
	// kept, as the Subscriber's RetainAcked. 0 means
	// redrive.DefaultRetainAcked; to trim everything every group finished
	// with, give a tiny window such as time.Millisecond.
	RetainAcked time.Duration
	// DryRun only reports what a trim would remove and which groups hold
	// the rest back.
	DryRun bool
}

// TrimReport is what TrimTopic did, or in a dry run would do.
type TrimReport struct {
	redrive.TrimResult
	// Topic is the Watermill topic.
	Topic string `json:"topic"`
	// DryRun is true when nothing was removed.
	DryRun bool `json:"dry_run"`
	// RetainAcked is the retention window used, in nanoseconds in JSON.
	RetainAcked time.Duration `json:"retain_acked_ns"`
	// WouldTrim is, in a dry run, the number of entries a trim would remove
	// now (counted by reading their IDs).
	WouldTrim int64 `json:"would_trim"`
}

// TrimTopic removes from topic's stream the entries that every consumer
// group on it has read and acknowledged and that are older than
// opts.RetainAcked, exactly as the Subscriber's trimmer does
// (redrive.TrimStream), and reports which groups hold older entries back.
// Use it for topics whose consumers are not redrive subscribers, or to free
// memory at once. A stream without consumer groups is never trimmed.
func (a *Admin) TrimTopic(ctx context.Context, topic string, opts TrimOptions) (TrimReport, error) {
	if topic == "" {
		return TrimReport{}, errors.New("redrive/admin: topic is empty")
	}
	if opts.RetainAcked < 0 {
		return TrimReport{}, fmt.Errorf("redrive/admin: TrimOptions.RetainAcked is %s, must not be negative", opts.RetainAcked)
	}
	if opts.RetainAcked == 0 {
		opts.RetainAcked = redrive.DefaultRetainAcked
	}
	stream := redrive.KeysFor(topic).Stream
	exists, err := a.client.Exists(ctx, stream).Result()
	if err != nil {
		return TrimReport{}, fmt.Errorf("redrive/admin: read topic %q: %w", topic, err)
	}
	if exists == 0 {
		return TrimReport{}, fmt.Errorf("redrive/admin: topic %q: %w: its stream does not exist", topic, ErrNotFound)
	}
	r, err := redrive.TrimStream(ctx, a.client, stream, opts.RetainAcked, opts.DryRun)
	if err != nil {
		return TrimReport{}, fmt.Errorf("redrive/admin: %w", err)
	}
	report := TrimReport{TrimResult: r, Topic: topic, DryRun: opts.DryRun, RetainAcked: opts.RetainAcked}
	if opts.DryRun && r.TrimBefore != "" {
		if report.WouldTrim, err = a.countBefore(ctx, stream, r.TrimBefore); err != nil {
			return TrimReport{}, err
		}
	}
	return report, nil
}

// countBefore counts the entries of stream with an ID before id, reading
// them in batches.
func (a *Admin) countBefore(ctx context.Context, stream, id string) (int64, error) {
	var n int64
	start := "-"
	for {
		batch, err := a.client.XRangeN(ctx, stream, start, "("+id, int64(a.config.BatchSize)).Result()
		if err != nil {
			return 0, fmt.Errorf("redrive/admin: count entries of %q before %s: %w", stream, id, err)
		}
		n += int64(len(batch))
		if len(batch) < a.config.BatchSize {
			return n, nil
		}
		start = "(" + batch[len(batch)-1].ID
	}
}

// RetainedEntries reports, for each consumer group of topic, what it still
// needs of the stream and how many entries older than retainAcked (0 means
// redrive.DefaultRetainAcked) it holds back. It changes nothing: it is the
// dry run of the trimmer's script, a few cheap commands per group, so a topic
// listing may call it for every topic.
func (a *Admin) RetainedEntries(ctx context.Context, topic string, retainAcked time.Duration) ([]redrive.GroupRetention, error) {
	if retainAcked <= 0 {
		retainAcked = redrive.DefaultRetainAcked
	}
	r, err := redrive.TrimStream(ctx, a.client, redrive.KeysFor(topic).Stream, retainAcked, true)
	if err != nil {
		return nil, fmt.Errorf("redrive/admin: %w", err)
	}
	return r.Groups, nil
}

// DeleteGroupResult is what DeleteGroup removed.
type DeleteGroupResult struct {
	// Topic is the Watermill topic.
	Topic string `json:"topic"`
	// Group is the consumer group deleted.
	Group string `json:"group"`
	// Pending is the number of entries that were delivered to the group and
	// not acked: nobody will process them for this group now.
	Pending int64 `json:"pending"`
	// Unread is the number of entries the group had not read, -1 when Redis
	// could not tell.
	Unread int64 `json:"unread"`
	// Retries is the number of the group's retries dropped: due, pending or
	// delayed in its retry stream and delayed set.
	Retries int64 `json:"retries"`
}

// DeleteGroup deletes consumer group group of topic: the group on the
// topic's stream (XGROUP DESTROY) and the group's private retry stream and
// delayed retries, which nobody else reads. Its pending and unread entries
// are then no longer held for it, so the next trim may remove them; they are
// not deleted from the stream here, and other groups still get them. It is
// what an operator does about a group that stopped reading for good (an old
// deployment) and holds retention back; it is never done automatically. A
// subscriber of the group that is still running recreates the group (at its
// OldestId) on its next read.
func (a *Admin) DeleteGroup(ctx context.Context, topic, group string) (DeleteGroupResult, error) {
	if topic == "" || group == "" {
		return DeleteGroupResult{}, errors.New("redrive/admin: topic and group must not be empty")
	}
	keys := redrive.KeysFor(topic)
	res := DeleteGroupResult{Topic: topic, Group: group, Unread: -1}
	groups, err := a.client.XInfoGroups(ctx, keys.Stream).Result()
	if err != nil && !redisinfo.IsNoSuchKey(err) {
		return res, fmt.Errorf("redrive/admin: read consumer groups of %q: %w", topic, err)
	}
	found := false
	for _, g := range groups {
		if g.Name == group {
			found = true
			res.Pending = g.Pending
			if a.serverHasLag(ctx) {
				res.Unread = g.Lag
			}
		}
	}
	if !found {
		return res, fmt.Errorf("redrive/admin: consumer group %q of topic %q: %w", group, topic, ErrNotFound)
	}
	retryStream, retryDelayed := keys.GroupRetry(group), keys.GroupRetryDelayed(group)
	// Every key of a topic is in one cluster slot, so one transaction
	// removes them together.
	var retries, delayed *redis.IntCmd
	var destroy *redis.IntCmd
	_, err = a.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		retries = pipe.XLen(ctx, retryStream)
		delayed = pipe.ZCard(ctx, retryDelayed)
		destroy = pipe.XGroupDestroy(ctx, keys.Stream, group)
		pipe.Del(ctx, retryStream, retryDelayed)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("redrive/admin: delete consumer group %q of topic %q: %w", group, topic, err)
	}
	if destroy.Val() == 0 {
		return res, fmt.Errorf("redrive/admin: consumer group %q of topic %q: %w (deleted meanwhile)", group, topic, ErrNotFound)
	}
	res.Retries = retries.Val() + delayed.Val()
	return res, nil
}
