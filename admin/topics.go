package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/wire"
)

// Defaults for ListTopicsOptions.
const (
	// DefaultTopicScanCount is the COUNT hint of each SCAN call.
	DefaultTopicScanCount = 1000
	// DefaultIdleGroupAfter is how long every consumer of a group must have
	// been idle, while the group has work, for ListTopics to call it idle.
	DefaultIdleGroupAfter = time.Minute
)

// ListTopicsOptions chooses what ListTopics looks at.
type ListTopicsOptions struct {
	// Match is a SCAN MATCH glob the topics' stream keys must match, such as
	// "orders.*". Default "*".
	Match string
	// ScanCount is the COUNT hint of each SCAN call. Default
	// DefaultTopicScanCount.
	ScanCount int
	// IdleGroupAfter is how long every consumer of a group with pending or
	// undelivered entries must have been idle for the group to count as not
	// reading (TopicSummary.IdleGroups). Default DefaultIdleGroupAfter.
	IdleGroupAfter time.Duration
}

// TopicSummary is one line of ListTopics: what a topic holds, summed over
// its consumer groups.
type TopicSummary struct {
	// Topic is the Watermill topic (its stream key).
	Topic string `json:"topic"`
	// Length is the number of entries in the stream (XLEN).
	Length int64 `json:"length"`
	// MemoryBytes is the stream's memory (MEMORY USAGE), 0 when the server
	// does not tell.
	MemoryBytes int64 `json:"memory_bytes"`
	// Groups is the number of consumer groups.
	Groups int `json:"groups"`
	// Lag is the sum of the groups' lag (entries not yet delivered), or -1
	// when Redis cannot tell for some group.
	Lag int64 `json:"lag"`
	// Pending is the sum of the groups' pending entries (delivered, not yet
	// acked), in the stream and in the groups' retry streams.
	Pending int64 `json:"pending"`
	// Delayed is the number of messages published with a delay that wait to
	// enter the stream.
	Delayed int64 `json:"delayed"`
	// RetriesWaiting is the number of retries of all groups that wait for
	// their due time or sit due in a retry stream.
	RetriesWaiting int64 `json:"retries_waiting"`
	// Poisoned is the number of entries in the topic's poison stream
	// (PoisonStreamOf), where the retry middleware moves messages by default.
	Poisoned int64 `json:"poisoned"`
	// PoisonStream is that stream.
	PoisonStream string `json:"poison_stream"`
	// IsPoisonTopic is true when the topic's newest entry is a poisoned
	// message (it carries Watermill's reason_poisoned metadata): the topic is
	// a poison topic chosen for the retry middleware.
	IsPoisonTopic bool `json:"is_poison_topic,omitempty"`
	// IdleGroups are the groups with work (lag or pending) whose consumers
	// all have been idle longer than IdleGroupAfter, or that have none.
	IdleGroups []string `json:"idle_groups,omitempty"`
	// LastEntryAt is when the newest entry was added (its ID's time); the
	// zero time for an empty stream.
	LastEntryAt time.Time `json:"last_entry_at,omitzero"`
}

// ListTopics finds every stream that is a Watermill topic, that is every
// stream except redrive's own poison and retry streams, with SCAN ... TYPE
// stream (on every master of a Redis Cluster), and reads a TopicSummary of
// each with pipelined commands: a few per topic and per group, none that
// reads a whole stream. Topics are sorted by name.
func (a *Admin) ListTopics(ctx context.Context, opts ListTopicsOptions) ([]TopicSummary, error) {
	if opts.Match == "" {
		opts.Match = "*"
	}
	if opts.ScanCount <= 0 {
		opts.ScanCount = DefaultTopicScanCount
	}
	if opts.IdleGroupAfter <= 0 {
		opts.IdleGroupAfter = DefaultIdleGroupAfter
	}
	topics, err := a.TopicNames(ctx, opts.Match, opts.ScanCount)
	if err != nil {
		return nil, err
	}
	out := make([]TopicSummary, len(topics))
	// Bounded pipelines keep one huge keyspace from making one huge reply.
	const chunk = 500
	for start := 0; start < len(topics); start += chunk {
		end := min(start+chunk, len(topics))
		if err := a.summarize(ctx, topics[start:end], out[start:end], opts.IdleGroupAfter); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TopicNames returns the names of the streams matching the glob match that
// are Watermill topics (see ListTopics), sorted. count is the SCAN COUNT
// hint (0 for DefaultTopicScanCount).
func (a *Admin) TopicNames(ctx context.Context, match string, count int) ([]string, error) {
	if match == "" {
		match = "*"
	}
	if count <= 0 {
		count = DefaultTopicScanCount
	}
	var (
		mu    sync.Mutex
		names []string
	)
	scanNode := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.ScanType(ctx, cursor, match, int64(count), "stream").Result()
			if err != nil {
				return fmt.Errorf("redrive/admin: scan for streams: %w", err)
			}
			mu.Lock()
			for _, k := range keys {
				if !IsInternalKey(k) {
					names = append(names, k)
				}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := a.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scanNode(ctx, c) })
	} else {
		err = scanNode(ctx, a.client)
	}
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	// SCAN may return a key twice.
	return compactSorted(names), nil
}

func compactSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// IsInternalKey reports whether key is one of redrive's own keys for some
// topic (its delayed set, poison stream, a group's retry stream or set, or
// an admin key) rather than a topic.
func IsInternalKey(key string) bool {
	_, ok := internalKeyTopic(key, func(k redrive.TopicKeys) bool {
		return key == k.Poison || key == k.Delayed || strings.HasPrefix(key, k.GroupRetry("")) || strings.HasPrefix(key, wire.AdminKey(k.Topic, ""))
	})
	return ok
}

// PoisonStreamTopic returns the topic whose poison stream (PoisonStreamOf)
// key is, and false when key is no topic's poison stream.
func PoisonStreamTopic(key string) (string, bool) {
	return internalKeyTopic(key, func(k redrive.TopicKeys) bool { return key == k.Poison })
}

// internalKeyTopic finds the topic T for which key is in T's namespace and
// is(KeysFor(T)) holds.
func internalKeyTopic(key string, is func(redrive.TopicKeys) bool) (string, bool) {
	if !strings.HasPrefix(key, "{") {
		return "", false
	}
	_, rest, ok := strings.Cut(key, "}:redrive:")
	if !ok {
		return "", false
	}
	// rest is "<topic>:<suffix>"; the topic may itself contain ':', so try
	// each split and check that it gives back exactly this key's layout.
	for i := strings.IndexByte(rest, ':'); i >= 0; {
		if topic := rest[:i]; topic != "" && is(redrive.KeysFor(topic)) {
			return topic, true
		}
		j := strings.IndexByte(rest[i+1:], ':')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return "", false
}

// IsPoisonStream reports whether stream holds poisoned messages: it is a
// topic's poison stream (PoisonStreamTopic), or a stream whose newest entry
// is a poisoned message (a poison topic of the retry middleware). A stream
// that does not exist is only a poison stream by its name.
func (a *Admin) IsPoisonStream(ctx context.Context, stream string) (bool, error) {
	if _, ok := PoisonStreamTopic(stream); ok {
		return true, nil
	}
	last, err := a.client.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		var replyErr redis.Error
		if errors.As(err, &replyErr) { // not a stream
			return false, nil
		}
		return false, fmt.Errorf("redrive/admin: read %q: %w", stream, err)
	}
	return len(last) > 0 && a.isPoisonEntry(last[0]), nil
}

// summarize fills out with the summaries of topics, in three pipelines:
// the topics, their groups' retries, their groups' consumers.
func (a *Admin) summarize(ctx context.Context, topics []string, out []TopicSummary, idleAfter time.Duration) error {
	type topicCmds struct {
		length, poisoned, delayed *redis.IntCmd
		memory                    *redis.IntCmd
		groups                    *redis.XInfoGroupsCmd
		last                      *redis.XMessageSliceCmd
	}
	cmds := make([]topicCmds, len(topics))
	pipe := a.client.Pipeline()
	for i, t := range topics {
		k := redrive.KeysFor(t)
		cmds[i] = topicCmds{
			length:   pipe.XLen(ctx, k.Stream),
			memory:   pipe.MemoryUsage(ctx, k.Stream),
			groups:   pipe.XInfoGroups(ctx, k.Stream),
			last:     pipe.XRevRangeN(ctx, k.Stream, "+", "-", 1),
			poisoned: pipe.XLen(ctx, k.Poison),
			delayed:  pipe.ZCard(ctx, k.Delayed),
		}
	}
	if err := execTolerant(ctx, pipe); err != nil {
		return fmt.Errorf("redrive/admin: read topics: %w", err)
	}
	hasLag := a.serverHasLag(ctx)

	type groupCmds struct {
		topic                  int
		group                  redis.XInfoGroup
		retryLen, retryDelayed *redis.IntCmd
		retryPending           *redis.XPendingCmd
		consumers              *redis.XInfoConsumersCmd
	}
	var gcmds []groupCmds
	pipe = a.client.Pipeline()
	for i, t := range topics {
		c := cmds[i]
		k := redrive.KeysFor(t)
		s := TopicSummary{Topic: t, PoisonStream: k.Poison, Length: c.length.Val(), Poisoned: c.poisoned.Val(), Delayed: c.delayed.Val()}
		if c.memory.Err() == nil {
			s.MemoryBytes = c.memory.Val()
		}
		if last := c.last.Val(); len(last) > 0 {
			s.LastEntryAt = wire.EntryTime(last[0].ID)
			s.IsPoisonTopic = a.isPoisonEntry(last[0])
		}
		groups := c.groups.Val()
		s.Groups = len(groups)
		for _, g := range groups {
			s.Pending += g.Pending
			switch {
			case s.Lag < 0:
			case !hasLag || g.Lag < 0:
				s.Lag = -1
			default:
				s.Lag += g.Lag
			}
			gcmds = append(gcmds, groupCmds{
				topic:        i,
				group:        g,
				retryLen:     pipe.XLen(ctx, k.GroupRetry(g.Name)),
				retryDelayed: pipe.ZCard(ctx, k.GroupRetryDelayed(g.Name)),
				retryPending: pipe.XPending(ctx, k.GroupRetry(g.Name), g.Name),
				consumers:    pipe.XInfoConsumers(ctx, k.Stream, g.Name),
			})
		}
		out[i] = s
	}
	if len(gcmds) > 0 {
		if err := execTolerant(ctx, pipe); err != nil {
			return fmt.Errorf("redrive/admin: read consumer groups: %w", err)
		}
	}
	for _, g := range gcmds {
		s := &out[g.topic]
		retryPending := int64(0)
		if p := g.retryPending.Val(); p != nil {
			retryPending = p.Count
		}
		s.Pending += retryPending
		// A due retry stays in the retry stream until settled, so the
		// pending ones are counted there already.
		s.RetriesWaiting += g.retryDelayed.Val() + max(0, g.retryLen.Val()-retryPending)
		hasWork := g.group.Pending > 0 || g.group.Lag > 0 || g.retryLen.Val() > 0
		if hasWork && allIdle(g.consumers.Val(), idleAfter) {
			s.IdleGroups = append(s.IdleGroups, g.group.Name)
		}
	}
	return nil
}

// allIdle reports whether no consumer read within idleAfter (true when
// there is no consumer at all).
func allIdle(consumers []redis.XInfoConsumer, idleAfter time.Duration) bool {
	for _, c := range consumers {
		if c.Idle < idleAfter {
			return false
		}
	}
	return true
}

// isPoisonEntry reports whether a stream entry is a message poisoned by
// Watermill's or redrive's poison middleware.
func (a *Admin) isPoisonEntry(e redis.XMessage) bool {
	msg, err := wire.DecodeEntry(a.config.Unmarshaller, e.ID, e.Values)
	return err == nil && msg.Metadata.Get(wmiddleware.ReasonForPoisonedKey) != ""
}

// execTolerant runs pipe, accepting the per-command replies Redis gives for
// keys or groups that do not exist (each command keeps its own error and a
// zero value), and failing on anything else (a lost connection).
func execTolerant(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		err := c.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			continue
		}
		var replyErr redis.Error
		if !errors.As(err, &replyErr) {
			return err
		}
	}
	return nil
}
