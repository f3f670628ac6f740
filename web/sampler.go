package web

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/startstop"
)

// topicListRefresh is how many sampling passes reuse one list of topics
// before SCAN runs again: topics come and go far more slowly than counters.
const topicListRefresh = 12

// sample is one reading of a topic's counters.
type sample struct {
	at time.Time
	// added is the stream's entries-added counter (XINFO STREAM, Redis 7).
	added int64
	// groups holds each group's counters, by name.
	groups map[string]groupSample
}

// groupSample is one reading of a group's counters.
type groupSample struct {
	// read is entries-read (XINFO GROUPS, Redis 7), lag its lag (-1 when
	// Redis cannot tell).
	read, lag int64
}

// sampler is the handler's background service: every interval it reads
// XINFO STREAM and XINFO GROUPS of the sampled topics in one pipeline and
// keeps the last window of readings in memory, for the topic charts and the
// overview's "lag growing" flag. The handler starts it and its Close stops
// it.
type sampler struct {
	startstop.Base
	client    redis.UniversalClient
	admin     *admin.Admin
	logger    watermill.LoggerAdapter
	interval  time.Duration
	keep      int
	maxTopics int
	match     string

	mu     sync.Mutex
	series map[string][]sample
	// watched are topics asked for by a page, sampled even beyond maxTopics.
	watched map[string]time.Time
	// passes counts completed passes (for tests that wait for samples).
	passes int
	topics []string
}

func newSampler(c Config, adm *admin.Admin, logger watermill.LoggerAdapter) *sampler {
	return &sampler{
		client:    c.Client,
		admin:     adm,
		logger:    logger,
		interval:  c.SampleInterval,
		keep:      int(c.SampleWindow/c.SampleInterval) + 1,
		maxTopics: c.MaxSampledTopics,
		match:     c.TopicMatch,
		series:    map[string][]sample{},
		watched:   map[string]time.Time{},
	}
}

// Start runs the sampling loop until Stop; the first pass runs at once.
func (s *sampler) Start(ctx context.Context) {
	ctx, shouldStart, stopped := s.StartInit(ctx)
	if !shouldStart {
		return
	}
	go func() {
		defer close(stopped)
		ticker := time.NewTicker(s.interval)
		defer ticker.Stop()
		var lastErr string
		for pass := 0; ; pass++ {
			err := s.runOnce(ctx, pass%topicListRefresh == 0)
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil && err.Error() != lastErr:
				// Logged once per distinct failure, not every few seconds.
				s.logger.Error("Cannot sample topics for the charts", err, nil)
				lastErr = err.Error()
			case err == nil:
				lastErr = ""
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
}

// watch makes sure topic is sampled for the next window.
func (s *sampler) watch(topic string) {
	s.mu.Lock()
	s.watched[topic] = time.Now()
	s.mu.Unlock()
}

// runOnce takes one sample of every sampled topic.
func (s *sampler) runOnce(ctx context.Context, refreshTopics bool) error {
	if refreshTopics {
		names, err := s.admin.TopicNames(ctx, s.match, 0)
		if err != nil {
			return err
		}
		if len(names) > s.maxTopics {
			names = names[:s.maxTopics]
		}
		s.mu.Lock()
		s.topics = names
		s.mu.Unlock()
	}
	topics := s.sampledTopics()
	if len(topics) == 0 {
		s.finishPass(nil)
		return nil
	}
	pipe := s.client.Pipeline()
	streams := make([]*redis.XInfoStreamCmd, len(topics))
	groups := make([]*redis.XInfoGroupsCmd, len(topics))
	for i, t := range topics {
		streams[i] = pipe.XInfoStream(ctx, t)
		groups[i] = pipe.XInfoGroups(ctx, t)
	}
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		var replyErr redis.Error
		if err := c.Err(); err != nil && !errors.As(err, &replyErr) {
			return err
		}
	}
	now := time.Now()
	readings := make(map[string]sample, len(topics))
	for i, t := range topics {
		if streams[i].Err() != nil {
			continue // gone since the scan
		}
		smp := sample{at: now, added: streams[i].Val().EntriesAdded, groups: map[string]groupSample{}}
		for _, g := range groups[i].Val() {
			smp.groups[g.Name] = groupSample{read: g.EntriesRead, lag: g.Lag}
		}
		readings[t] = smp
	}
	s.finishPass(readings)
	return nil
}

// sampledTopics is the background list plus the watched topics, forgetting
// those not watched for a window.
func (s *sampler) sampledTopics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	out := append([]string(nil), s.topics...)
	for _, t := range out {
		seen[t] = true
	}
	window := time.Duration(s.keep) * s.interval
	for t, at := range s.watched {
		if time.Since(at) > window {
			delete(s.watched, t)
			continue
		}
		if !seen[t] {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

func (s *sampler) finishPass(readings map[string]sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, smp := range readings {
		ser := append(s.series[t], smp)
		if len(ser) > s.keep {
			ser = append(ser[:0:0], ser[len(ser)-s.keep:]...)
		}
		s.series[t] = ser
	}
	for t := range s.series {
		if _, ok := readings[t]; !ok {
			delete(s.series, t)
		}
	}
	s.passes++
}

// history returns a copy of topic's samples, oldest first.
func (s *sampler) history(topic string) []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.series[topic]...)
}

// passCount returns the number of completed passes.
func (s *sampler) passCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passes
}

// lagGrowingSamples is how many recent samples must show a rising total lag
// for the overview to flag a topic.
const lagGrowingSamples = 4

// lagGrowing reports whether topic's total lag rose at each of its last
// few samples.
func (s *sampler) lagGrowing(topic string) bool {
	ser := s.history(topic)
	if len(ser) < lagGrowingSamples {
		return false
	}
	ser = ser[len(ser)-lagGrowingSamples:]
	prev := int64(-1)
	for _, smp := range ser {
		var total int64
		for _, g := range smp.groups {
			if g.lag < 0 {
				return false
			}
			total += g.lag
		}
		if prev >= 0 && total <= prev {
			return false
		}
		prev = total
	}
	return true
}
