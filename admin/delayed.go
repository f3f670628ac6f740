package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/wire"
	"github.com/redrive-go/redrive/middleware"
)

// DelayedSet names one sorted set of delayed messages and the stream they go
// to when due.
type DelayedSet struct {
	// Topic is the topic the set belongs to.
	Topic string `json:"topic"`
	// Group is the consumer group whose retries the set holds, or "" for the
	// topic's own delayed messages (published with Watermill's delay
	// metadata), which every group receives.
	Group string `json:"group,omitempty"`
	// Key is the sorted set.
	Key string `json:"key"`
	// Stream is where its messages go when due.
	Stream string `json:"stream"`
}

// TopicDelayedSet is the set of messages published to topic with a delay.
func TopicDelayedSet(topic string) DelayedSet {
	k := redrive.KeysFor(topic)
	return DelayedSet{Topic: topic, Key: k.Delayed, Stream: k.Stream}
}

// GroupDelayedSet is the set of consumer group's retries of topic that wait
// for their due time.
func GroupDelayedSet(topic, group string) DelayedSet {
	k := redrive.KeysFor(topic)
	return DelayedSet{Topic: topic, Group: group, Key: k.GroupRetryDelayed(group), Stream: k.GroupRetry(group)}
}

// DelayedSets returns the topic's delayed set followed by the retry set of
// each consumer group of the topic, by group name.
func (a *Admin) DelayedSets(ctx context.Context, topic string) ([]DelayedSet, error) {
	if topic == "" {
		return nil, errors.New("redrive/admin: topic is empty")
	}
	groups, err := a.client.XInfoGroups(ctx, topic).Result()
	if err != nil && !redisinfo.IsNoSuchKey(err) {
		return nil, fmt.Errorf("redrive/admin: read consumer groups of %q: %w", topic, err)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	sets := []DelayedSet{TopicDelayedSet(topic)}
	for _, g := range groups {
		sets = append(sets, GroupDelayedSet(topic, g.Name))
	}
	return sets, nil
}

// DelayedMessage is one message waiting in a delayed set.
type DelayedMessage struct {
	// Topic and Group name its set (Group is "" for the topic's own set).
	Topic string `json:"topic"`
	Group string `json:"group,omitempty"`
	// ID names the delayed message; RunDelayedNow takes it.
	ID string `json:"id"`
	// DueAt is when it enters its stream.
	DueAt time.Time `json:"due_at"`
	// UUID is the Watermill message UUID.
	UUID string `json:"uuid"`
	// Attempts is how many times its handler failed so far (0 for a
	// message that was only published with a delay).
	Attempts int `json:"attempts"`
	// LastError is the handler's last error, for a retry.
	LastError string `json:"last_error,omitempty"`
	// DecodeError is set when the member cannot be decoded. Run now moves
	// it anyway, and the Subscriber then poisons it.
	DecodeError string `json:"decode_error,omitempty"`

	member string
	fields map[string]interface{}
}

// ListDelayedOptions chooses a page of ListDelayed.
type ListDelayedOptions struct {
	// Offset skips this many messages, in due order.
	Offset int
	// Limit is the most messages returned; 0 means 100.
	Limit int
}

// DelayedList is a page of a delayed set.
type DelayedList struct {
	// Set is the delayed set.
	Set DelayedSet `json:"set"`
	// Total is the number of messages in the set.
	Total int64 `json:"total"`
	// Messages are the listed messages, soonest due first.
	Messages []DelayedMessage `json:"messages"`
}

// ListDelayed lists the messages of a delayed set, soonest due first.
func (a *Admin) ListDelayed(ctx context.Context, set DelayedSet, opts ListDelayedOptions) (DelayedList, error) {
	if set.Key == "" {
		return DelayedList{}, errors.New("redrive/admin: delayed set is empty; use TopicDelayedSet or GroupDelayedSet")
	}
	if opts.Offset < 0 {
		return DelayedList{}, fmt.Errorf("redrive/admin: offset %d is negative", opts.Offset)
	}
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	pipe := a.client.Pipeline()
	totalCmd := pipe.ZCard(ctx, set.Key)
	pageCmd := pipe.ZRangeWithScores(ctx, set.Key, int64(opts.Offset), int64(opts.Offset+opts.Limit-1))
	if _, err := pipe.Exec(ctx); err != nil {
		return DelayedList{}, fmt.Errorf("redrive/admin: read delayed set %q: %w", set.Key, err)
	}
	list := DelayedList{Set: set, Total: totalCmd.Val(), Messages: []DelayedMessage{}}
	for _, z := range pageCmd.Val() {
		list.Messages = append(list.Messages, a.decodeDelayed(set, z))
	}
	return list, nil
}

// decodeDelayed reads a member. It never fails: a member that cannot be
// decoded is described by DecodeError.
func (a *Admin) decodeDelayed(set DelayedSet, z redis.Z) DelayedMessage {
	member, _ := z.Member.(string)
	m := DelayedMessage{Topic: set.Topic, Group: set.Group, DueAt: time.UnixMilli(int64(z.Score)), member: member}
	entry, err := wire.DecodeDelayedMember(member, z.Score)
	if err != nil {
		m.DecodeError = err.Error()
		m.fields = map[string]interface{}{scripts.CorruptDelayedField: member}
		return m
	}
	m.ID, m.fields = entry.ID, entry.Fields
	m.UUID, _ = entry.Fields[redrive.UUIDHeaderKey].(string)
	msg, err := wire.DecodeEntry(a.config.Unmarshaller, entry.ID, entry.Fields)
	if err != nil {
		m.DecodeError = err.Error()
		return m
	}
	m.UUID = msg.UUID
	m.Attempts, _ = strconv.Atoi(msg.Metadata.Get(middleware.MetadataAttempts))
	m.LastError = msg.Metadata.Get(middleware.MetadataLastError)
	return m
}

// RunNowOptions chooses the messages RunDelayedNow moves.
type RunNowOptions struct {
	// IDs are the delayed message IDs to run now.
	IDs []string
	// All runs every message waiting when the call starts.
	All bool
	// Progress, when set, is called after each batch.
	Progress ProgressFunc
}

// RunNowResult sums up a RunDelayedNow.
type RunNowResult struct {
	// Set is the delayed set.
	Set DelayedSet `json:"set"`
	// Moved is how many messages entered the stream.
	Moved int `json:"moved"`
	// Gone is how many a delayed-message mover moved first.
	Gone int `json:"gone"`
	// NotFound are the IDs asked for that are not in the set.
	NotFound []string `json:"not_found,omitempty"`
	// Messages are the messages moved, with their new entry IDs.
	Messages []RunNowOutcome `json:"messages"`
}

// RunNowOutcome is what happened to one delayed message.
type RunNowOutcome struct {
	// ID is the delayed message ID ("" for a member that cannot be decoded).
	ID string `json:"id"`
	// UUID is the message UUID.
	UUID string `json:"uuid,omitempty"`
	// NewID is its entry ID in the stream; empty when it was gone.
	NewID string `json:"new_id,omitempty"`
}

// RunDelayedNow moves the chosen delayed messages into their stream at once,
// ahead of their due time, each atomically with its removal from the set (see
// the package documentation for why this moves rather than re-scores).
// Messages of a group's retry set go to that group's retry stream only. It
// returns an error wrapping ErrNotFound when none of opts.IDs is in the set.
func (a *Admin) RunDelayedNow(ctx context.Context, set DelayedSet, opts RunNowOptions) (RunNowResult, error) {
	res := RunNowResult{Set: set, Messages: []RunNowOutcome{}}
	switch {
	case set.Key == "" || set.Stream == "":
		return res, errors.New("redrive/admin: delayed set is empty; use TopicDelayedSet or GroupDelayedSet")
	case opts.All && len(opts.IDs) > 0:
		return res, errors.New("redrive/admin: RunNowOptions has both All and IDs; give one")
	case !opts.All && len(opts.IDs) == 0:
		return res, errors.New("redrive/admin: no delayed messages selected: give IDs or All")
	}
	var err error
	if opts.All {
		res, err = a.runAllNow(ctx, set, opts.Progress, res)
	} else {
		res, err = a.runIDsNow(ctx, set, opts.IDs, opts.Progress, res)
	}
	if res.Moved > 0 {
		a.logger.Info("Ran delayed messages now", watermill.LogFields{"delayed": set.Key, "stream": set.Stream, "moved": res.Moved})
	}
	return res, err
}

func (a *Admin) runAllNow(ctx context.Context, set DelayedSet, progress ProgressFunc, res RunNowResult) (RunNowResult, error) {
	total, err := a.client.ZCard(ctx, set.Key).Result()
	if err != nil {
		return res, fmt.Errorf("redrive/admin: read delayed set %q: %w", set.Key, err)
	}
	// Only as many as waited at the start: retries keep arriving on a busy
	// topic, and "all" must end.
	scanned := 0
	for scanned < int(total) {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("redrive/admin: run delayed messages of %q: %w", set.Key, err)
		}
		n := min(a.config.BatchSize, int(total)-scanned)
		page, err := a.client.ZRangeWithScores(ctx, set.Key, 0, int64(n-1)).Result()
		if err != nil {
			return res, fmt.Errorf("redrive/admin: read delayed set %q: %w", set.Key, err)
		}
		if len(page) == 0 {
			break
		}
		msgs := make([]DelayedMessage, len(page))
		for i, z := range page {
			msgs[i] = a.decodeDelayed(set, z)
		}
		scanned += len(page)
		if err := a.runBatch(ctx, set, msgs, &res); err != nil {
			return res, err
		}
		if progress != nil {
			progress(Progress{Total: int(total), Scanned: scanned, Matched: scanned, Done: res.Moved})
		}
	}
	return res, nil
}

func (a *Admin) runIDsNow(ctx context.Context, set DelayedSet, ids []string, progress ProgressFunc, res RunNowResult) (RunNowResult, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	// Delayed IDs are inside the members, so finding them means reading the
	// set. ZSCAN returns every member present for the whole scan.
	var found []DelayedMessage
	var cursor uint64
	scanned := 0
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("redrive/admin: run delayed messages of %q: %w", set.Key, err)
		}
		kv, next, err := a.client.ZScan(ctx, set.Key, cursor, "", int64(a.config.BatchSize)).Result()
		if err != nil {
			return res, fmt.Errorf("redrive/admin: scan delayed set %q: %w", set.Key, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			scanned++
			score, err := strconv.ParseFloat(kv[i+1], 64)
			if err != nil {
				continue
			}
			m := a.decodeDelayed(set, redis.Z{Member: kv[i], Score: score})
			if m.ID != "" && want[m.ID] {
				delete(want, m.ID) // ZSCAN may return a member twice
				found = append(found, m)
			}
		}
		cursor = next
		if cursor == 0 || len(want) == 0 {
			break
		}
	}
	for chunk := range slices.Chunk(found, a.config.BatchSize) {
		if err := a.runBatch(ctx, set, chunk, &res); err != nil {
			return res, err
		}
		if progress != nil {
			progress(Progress{Total: len(ids), Scanned: scanned, Matched: len(found), Done: res.Moved})
		}
	}
	for _, id := range ids {
		if want[id] {
			res.NotFound = append(res.NotFound, id)
			delete(want, id) // a repeated ID is reported once
		}
	}
	if len(found) == 0 {
		return res, fmt.Errorf("%w: none of %v in delayed set %q", ErrNotFound, ids, set.Key)
	}
	return res, nil
}

// runBatch moves msgs with one call of the run_delayed_now script.
func (a *Admin) runBatch(ctx context.Context, set DelayedSet, msgs []DelayedMessage, res *RunNowResult) error {
	if len(msgs) == 0 {
		return nil
	}
	args := scripts.RunDelayedNowArgs{Delayed: set.Key, Stream: set.Stream}
	for _, m := range msgs {
		args.Messages = append(args.Messages, scripts.DelayedMessage{Member: m.member, Fields: m.fields})
	}
	newIDs, err := scripts.RunDelayedNow.Run(ctx, a.client, args)
	if err != nil {
		return fmt.Errorf("redrive/admin: move delayed messages from %q to %q: %w", set.Key, set.Stream, err)
	}
	for i, m := range msgs {
		id := newIDs[i]
		if id == "" {
			res.Gone++
			continue
		}
		res.Moved++
		res.Messages = append(res.Messages, RunNowOutcome{ID: m.ID, UUID: m.UUID, NewID: id})
	}
	return nil
}
