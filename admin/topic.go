package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/wire"
)

// TopicInfo is what a topic holds, as TopicInfo reads it.
type TopicInfo struct {
	// Topic is the Watermill topic.
	Topic string `json:"topic"`
	// Stream is its stream key (the topic itself).
	Stream string `json:"stream"`
	// Exists is false when the stream does not exist (nothing was published
	// and no group was created).
	Exists bool `json:"exists"`
	// Length is the number of entries in the stream (XLEN). Acked entries
	// stay until trimmed, so this is not a backlog; Lag and Pending are.
	Length int64 `json:"length"`
	// Groups are the stream's consumer groups, by name.
	Groups []GroupInfo `json:"groups"`
	// Delayed are the messages waiting to enter the stream.
	Delayed DelayedSummary `json:"delayed"`
	// PoisonStream is the stream where the Subscriber moves entries of this
	// topic it cannot deliver (redrive.KeysFor(topic).Poison).
	PoisonStream string `json:"poison_stream"`
	// Poisoned is the number of entries in PoisonStream.
	Poisoned int64 `json:"poisoned"`
	// PoisonTopics counts, for each poison topic asked for in
	// TopicInfoOptions or noted by the retry middleware when it poisoned a
	// message of this topic there, the entries poisoned from this topic.
	PoisonTopics []PoisonTopicCount `json:"poison_topics,omitempty"`
}

// GroupInfo describes one consumer group of a topic.
type GroupInfo struct {
	// Name is the consumer group.
	Name string `json:"name"`
	// Pending is the number of entries delivered and not yet acked.
	Pending int64 `json:"pending"`
	// Lag is the number of entries not yet delivered to the group, or -1
	// when Redis cannot tell (before Redis 7, or after entries were deleted
	// from the middle of the stream).
	Lag int64 `json:"lag"`
	// LastDeliveredID is the last entry delivered to the group.
	LastDeliveredID string `json:"last_delivered_id"`
	// OldestPendingID is the oldest entry delivered and not yet acked, ""
	// when none is pending.
	OldestPendingID string `json:"oldest_pending_id,omitempty"`
	// OldestPendingAt is when that entry was added to the stream (its ID's
	// time); the zero time when none is pending.
	OldestPendingAt time.Time `json:"oldest_pending_at,omitzero"`
	// Consumers are the group's consumers on the topic's stream.
	Consumers []ConsumerInfo `json:"consumers"`
	// Retry describes the group's private retries.
	Retry RetryInfo `json:"retry"`
	// Retention is what the group still needs of the stream and how many
	// entries older than the retention window it holds back from trimming.
	Retention redrive.GroupRetention `json:"retention"`
}

// OldestPendingAge is how long the oldest pending entry has been in the
// stream at now, or 0 when none is pending.
func (g GroupInfo) OldestPendingAge(now time.Time) time.Duration {
	if g.OldestPendingAt.IsZero() {
		return 0
	}
	return now.Sub(g.OldestPendingAt)
}

// ConsumerInfo describes one consumer of a group.
type ConsumerInfo struct {
	// Name is the consumer.
	Name string `json:"name"`
	// Pending is the number of entries it holds without having acked them.
	Pending int64 `json:"pending"`
	// Idle is the time since it last read or claimed (XINFO CONSUMERS idle),
	// in nanoseconds in JSON.
	Idle time.Duration `json:"idle_ns"`
}

// RetryInfo describes the retries private to one consumer group of a topic:
// the stream only that group reads, and the delayed set its retries wait in.
type RetryInfo struct {
	// Stream is the group's retry stream (KeysFor(topic).GroupRetry(group)).
	Stream string `json:"stream"`
	// Length is the number of retries due and not yet settled. The
	// Subscriber deletes a retry once handled, so this is a backlog.
	Length int64 `json:"length"`
	// Pending is the number of retries delivered and not yet settled.
	Pending int64 `json:"pending"`
	// OldestPendingAt is when the oldest pending retry entered the retry
	// stream; the zero time when none is pending.
	OldestPendingAt time.Time `json:"oldest_pending_at,omitzero"`
	// Delayed are the retries waiting for their due time.
	Delayed DelayedSummary `json:"delayed"`
}

// DelayedSummary counts the messages of one delayed set.
type DelayedSummary struct {
	// Key is the sorted set.
	Key string `json:"key"`
	// Count is the number of messages waiting.
	Count int64 `json:"count"`
	// NextDueAt is when the earliest of them is due; the zero time when none
	// waits.
	NextDueAt time.Time `json:"next_due_at,omitzero"`
}

// PoisonTopicCount is the number of entries in a poison topic whose original
// topic (topic_poisoned) is the topic asked about.
type PoisonTopicCount struct {
	// PoisonTopic is the poison stream.
	PoisonTopic string `json:"poison_topic"`
	// Count is the number of its entries from the topic.
	Count int64 `json:"count"`
}

// TopicInfoOptions adds optional, more costly parts to TopicInfo.
type TopicInfoOptions struct {
	// PoisonTopics are poison topics (such as the retry middleware's) in
	// which to count the messages poisoned from this topic, besides those the
	// retry middleware noted when it poisoned a message of this topic
	// (always counted). Each is read whole, in batches, so this costs one
	// pass over each poison topic.
	PoisonTopics []string
	// RetainAcked is the retention window against which each group's
	// GroupInfo.Retention is judged, as the subscribers' RetainAcked. 0
	// means redrive.DefaultRetainAcked.
	RetainAcked time.Duration
}

// TopicInfo reads what topic holds: stream length, consumer groups with their
// pending entries, lag, oldest pending entry, consumers and private retries,
// delayed messages and poisoned messages. It is a handful of cheap commands
// per group (no scan), so it is fine to call on a busy topic; only
// opts.PoisonTopics reads whole streams.
func (a *Admin) TopicInfo(ctx context.Context, topic string, opts TopicInfoOptions) (TopicInfo, error) {
	if topic == "" {
		return TopicInfo{}, errors.New("redrive/admin: topic is empty")
	}
	keys := redrive.KeysFor(topic)
	info := TopicInfo{Topic: topic, Stream: keys.Stream, PoisonStream: keys.Poison, Groups: []GroupInfo{}}

	// Every key of a topic is in one cluster slot, so one pipeline reaches
	// one node.
	pipe := a.client.Pipeline()
	existsCmd := pipe.Exists(ctx, keys.Stream)
	lenCmd := pipe.XLen(ctx, keys.Stream)
	groupsCmd := pipe.XInfoGroups(ctx, keys.Stream)
	poisonedCmd := pipe.XLen(ctx, keys.Poison)
	poisonTopicsCmd := pipe.SMembers(ctx, keys.PoisonTopics())
	delayedCount, delayedHead := queueDelayedSummary(ctx, pipe, keys.Delayed)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !redisinfo.IsNoSuchKey(err) {
		return TopicInfo{}, fmt.Errorf("redrive/admin: read topic %q: %w", topic, err)
	}
	info.Exists = existsCmd.Val() == 1
	info.Length = lenCmd.Val()
	info.Poisoned = poisonedCmd.Val()
	var err error
	if info.Delayed, err = delayedSummary(keys.Delayed, delayedCount, delayedHead); err != nil {
		return TopicInfo{}, fmt.Errorf("redrive/admin: read topic %q: %w", topic, err)
	}
	groups, err := groupsCmd.Result()
	if err != nil && !redisinfo.IsNoSuchKey(err) {
		return TopicInfo{}, fmt.Errorf("redrive/admin: read consumer groups of %q: %w", topic, err)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	hasLag := a.serverHasLag(ctx)
	for _, g := range groups {
		gi, err := a.groupInfo(ctx, keys, g, hasLag)
		if err != nil {
			return TopicInfo{}, err
		}
		info.Groups = append(info.Groups, gi)
	}
	if len(info.Groups) > 0 {
		retention, err := a.RetainedEntries(ctx, topic, opts.RetainAcked)
		if err != nil {
			return TopicInfo{}, err
		}
		for _, r := range retention {
			for i := range info.Groups {
				if info.Groups[i].Name == r.Group {
					info.Groups[i].Retention = r
				}
			}
		}
	}
	for _, pt := range poisonTopicsToCount(opts.PoisonTopics, poisonTopicsCmd.Val()) {
		n, err := a.countPoisonedFrom(ctx, pt, topic)
		if err != nil {
			return TopicInfo{}, err
		}
		info.PoisonTopics = append(info.PoisonTopics, PoisonTopicCount{PoisonTopic: pt, Count: n})
	}
	return info, nil
}

func (a *Admin) groupInfo(ctx context.Context, keys redrive.TopicKeys, g redis.XInfoGroup, hasLag bool) (GroupInfo, error) {
	gi := GroupInfo{
		Name:            g.Name,
		Pending:         g.Pending,
		Lag:             g.Lag,
		LastDeliveredID: g.LastDeliveredID,
		Consumers:       []ConsumerInfo{},
		Retry:           RetryInfo{Stream: keys.GroupRetry(g.Name)},
	}
	if !hasLag {
		gi.Lag = -1
	}
	pipe := a.client.Pipeline()
	consumersCmd := pipe.XInfoConsumers(ctx, keys.Stream, g.Name)
	pendingCmd := pipe.XPending(ctx, keys.Stream, g.Name)
	retryLenCmd := pipe.XLen(ctx, gi.Retry.Stream)
	retryPendingCmd := pipe.XPending(ctx, gi.Retry.Stream, g.Name)
	retryDelayedKey := keys.GroupRetryDelayed(g.Name)
	rdCount, rdHead := queueDelayedSummary(ctx, pipe, retryDelayedKey)
	// A group that never subscribed through redrive has no retry stream:
	// its XPENDING fails with NOGROUP, which only means "no retries", so
	// Redis's own replies are judged per command below. Any other failure
	// (no connection) may leave commands with neither reply nor error.
	if _, err := pipe.Exec(ctx); err != nil {
		var replyErr redis.Error
		if !errors.As(err, &replyErr) {
			return GroupInfo{}, fmt.Errorf("redrive/admin: read group %q of %q: %w", g.Name, keys.Stream, err)
		}
	}

	consumers, err := consumersCmd.Result()
	if err != nil && !redisinfo.IsNoGroup(err) && !redisinfo.IsNoSuchKey(err) {
		return GroupInfo{}, fmt.Errorf("redrive/admin: read consumers of group %q on %q: %w", g.Name, keys.Stream, err)
	}
	for _, c := range consumers {
		gi.Consumers = append(gi.Consumers, ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
	}
	sort.Slice(gi.Consumers, func(i, j int) bool { return gi.Consumers[i].Name < gi.Consumers[j].Name })

	pending, err := pendingCmd.Result()
	if err != nil && !redisinfo.IsNoGroup(err) && !redisinfo.IsNoSuchKey(err) {
		return GroupInfo{}, fmt.Errorf("redrive/admin: read pending entries of group %q on %q: %w", g.Name, keys.Stream, err)
	}
	if pending != nil && pending.Count > 0 {
		gi.OldestPendingID = pending.Lower
		gi.OldestPendingAt = wire.EntryTime(pending.Lower)
	}
	if err := retryLenCmd.Err(); err != nil {
		return GroupInfo{}, fmt.Errorf("redrive/admin: read retry stream %q: %w", gi.Retry.Stream, err)
	}
	gi.Retry.Length = retryLenCmd.Val()
	retryPending, err := retryPendingCmd.Result()
	if err != nil && !redisinfo.IsNoGroup(err) && !redisinfo.IsNoSuchKey(err) {
		return GroupInfo{}, fmt.Errorf("redrive/admin: read pending retries of group %q: %w", g.Name, err)
	}
	if retryPending != nil && retryPending.Count > 0 {
		gi.Retry.Pending = retryPending.Count
		gi.Retry.OldestPendingAt = wire.EntryTime(retryPending.Lower)
	}
	if gi.Retry.Delayed, err = delayedSummary(retryDelayedKey, rdCount, rdHead); err != nil {
		return GroupInfo{}, fmt.Errorf("redrive/admin: read retries of group %q: %w", g.Name, err)
	}
	return gi, nil
}

// queueDelayedSummary adds to pipe the two reads delayedSummary needs.
func queueDelayedSummary(ctx context.Context, pipe redis.Pipeliner, key string) (*redis.IntCmd, *redis.ZSliceCmd) {
	return pipe.ZCard(ctx, key), pipe.ZRangeWithScores(ctx, key, 0, 0)
}

func delayedSummary(key string, count *redis.IntCmd, head *redis.ZSliceCmd) (DelayedSummary, error) {
	if err := count.Err(); err != nil {
		return DelayedSummary{}, fmt.Errorf("count delayed set %q: %w", key, err)
	}
	if err := head.Err(); err != nil {
		return DelayedSummary{}, fmt.Errorf("read delayed set %q: %w", key, err)
	}
	s := DelayedSummary{Key: key, Count: count.Val()}
	if z := head.Val(); len(z) > 0 {
		s.NextDueAt = time.UnixMilli(int64(z[0].Score))
	}
	return s, nil
}

// poisonTopicsToCount returns the poison topics asked for, then those the
// retry middleware noted for the topic, each once.
func poisonTopicsToCount(asked, noted []string) []string {
	sort.Strings(noted)
	seen := map[string]bool{}
	var out []string
	for _, pt := range append(append([]string(nil), asked...), noted...) {
		if !seen[pt] {
			seen[pt] = true
			out = append(out, pt)
		}
	}
	return out
}

// countPoisonedFrom counts the entries of poisonStream whose original topic
// is topic, reading it in batches.
func (a *Admin) countPoisonedFrom(ctx context.Context, poisonStream, topic string) (int64, error) {
	var n int64
	err := a.scanPoison(ctx, poisonStream, Selector{All: true, OriginalTopic: topic}, time.Now(), nil,
		func(batch []PoisonedMessage, _ int) error {
			n += int64(len(batch))
			return nil
		})
	if err != nil {
		return 0, err
	}
	return n, nil
}
