// Package metrics exports redrive's Prometheus metrics.
//
// A Collector is a prometheus.Collector the application registers. Its
// counters are fed by hooks: InstrumentRetry wires the retry middleware's
// OnRetry and OnPoison, InstrumentSubscriber wires a Subscriber's OnClaim and
// OnCrashLoop (the router package does both when its Config.Metrics is set).
// Its gauges are read from Redis at scrape time, for the topics and consumer
// groups given to Watch, in one pipelined round trip and at most once per
// ReadInterval: scrapes in between report the values read last.
//
// Poison reasons are the redrive.PoisonReason codes, the same the README
// lists: max_retries, max_elapsed_time and permanent (the retry middleware:
// the reason label of redrive_messages_poisoned_total, taken from the
// PoisonEvent's ReasonCode), crash_loop (the Subscriber: counted by
// redrive_messages_crash_looped_total), undecodable (the Subscriber: in the
// poison stream, not counted here) and other (anything else; a hand-made
// PoisonEvent without a code is read from its Reason text).
//
// Every name starts with redrive_, so the collector registers beside
// Watermill's components/metrics without a clash.
//
// Counters:
//
//	redrive_retries_scheduled_total{topic,handler}              retries the retry middleware scheduled
//	redrive_messages_poisoned_total{topic,handler,reason}       messages the retry middleware sent to the poison topic;
//	                                                            reason is max_retries, max_elapsed_time or permanent
//	                                                            (the event's ReasonCode)
//	redrive_messages_claimed_total{topic,consumer_group}        entries taken over from consumers that stopped (crashed)
//	redrive_messages_crash_looped_total{topic,consumer_group}   entries poisoned after MaxDeliveries deliveries never settled
//	redrive_metrics_read_errors_total                           failed reads of the gauges from Redis
//
// Gauges:
//
//	redrive_stream_entries{topic}                    entries in the topic's stream (XLEN)
//	redrive_delayed_messages{topic}                  delayed messages waiting to enter the topic's stream
//	redrive_delayed_retries{topic,consumer_group}    retries of the group waiting for their due time
//	redrive_pending_messages{topic,consumer_group}   messages delivered to the group and not yet settled
//	redrive_lag_messages{topic,consumer_group}       messages in the streams not yet delivered to the group
//	redrive_consumers{topic,consumer_group}          consumers in the group
//	redrive_poison_messages{topic}                   entries in the topic's poison stream
//	redrive_retained_entries{topic,consumer_group}   entries the group still needs (pending and unread) while the
//	                                                 stream keeps entries older than RetainAcked for it: what it
//	                                                 holds back from trimming; 0 when it holds nothing back
//	redrive_retained_oldest_seconds{topic,consumer_group}  age of the oldest entry kept for the group; 0 when none
//
// The two retained gauges cover every consumer group of a watched topic,
// watched or not (a group nobody watches, such as an old deployment's, is the
// one that holds retention back), and are read by the trimmer's script in
// its read-only mode, in the same pipeline as the other gauges.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/middleware"
)

// Collector defaults.
const (
	// DefaultReadInterval is the least time between two reads of the gauges.
	DefaultReadInterval = 10 * time.Second
	// DefaultReadTimeout bounds one read of the gauges.
	DefaultReadTimeout = 5 * time.Second
)

// Poison reasons, the values of the reason label of
// redrive_messages_poisoned_total: the redrive.PoisonReason codes the retry
// middleware writes, as strings.
const (
	ReasonMaxRetries     = string(redrive.PoisonReasonMaxRetries)
	ReasonMaxElapsedTime = string(redrive.PoisonReasonMaxElapsedTime)
	ReasonPermanent      = string(redrive.PoisonReasonPermanent)
)

// Config configures a Collector.
type Config struct {
	// Client reads the gauges. Nil reports the counters only.
	Client redis.UniversalClient
	// ReadInterval is the least time between two reads of the gauges from
	// Redis; a scrape sooner than that reports the values read last. Default
	// DefaultReadInterval.
	ReadInterval time.Duration
	// ReadTimeout bounds one read. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// ConstLabels are added to every metric, for example the service name.
	ConstLabels prometheus.Labels
	// RetainAcked is the retention window the retained gauges judge the
	// groups against: set it to the subscribers' RetainAcked. Default
	// redrive.DefaultRetainAcked.
	RetainAcked time.Duration
}

func (c *Config) setDefaults() {
	if c.ReadInterval == 0 {
		c.ReadInterval = DefaultReadInterval
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.RetainAcked == 0 {
		c.RetainAcked = redrive.DefaultRetainAcked
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.ReadInterval < 0 {
		return fmt.Errorf("redrive/metrics: Config.ReadInterval is %s, must be positive", c.ReadInterval)
	}
	if c.ReadTimeout < 0 {
		return fmt.Errorf("redrive/metrics: Config.ReadTimeout is %s, must be positive", c.ReadTimeout)
	}
	if c.RetainAcked < 0 {
		return fmt.Errorf("redrive/metrics: Config.RetainAcked is %s, must be positive", c.RetainAcked)
	}
	return nil
}

// Collector is a prometheus.Collector of redrive's metrics. Its methods are
// safe for concurrent use.
type Collector struct {
	config Config
	logger watermill.LoggerAdapter

	retries    *prometheus.CounterVec
	poisoned   *prometheus.CounterVec
	claimed    *prometheus.CounterVec
	crashLoops *prometheus.CounterVec
	readErrors prometheus.Counter

	streamEntries  *prometheus.Desc
	delayed        *prometheus.Desc
	delayedRetries *prometheus.Desc
	pending        *prometheus.Desc
	lag            *prometheus.Desc
	consumers      *prometheus.Desc
	poison         *prometheus.Desc
	retained       *prometheus.Desc
	retainedAge    *prometheus.Desc

	watchMu sync.Mutex
	watched map[string]map[string]bool // topic → consumer groups

	// readMu serializes reads; concurrent scrapes share one.
	readMu   sync.Mutex
	lastRead time.Time
	snapshot []prometheus.Metric
}

// NewCollector creates a Collector. Register it with a prometheus.Registerer.
func NewCollector(config Config, logger watermill.LoggerAdapter) (*Collector, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: config.ConstLabels}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, config.ConstLabels)
	}
	return &Collector{
		config: config,
		logger: logger.With(watermill.LogFields{"component": "redrive_metrics"}),

		retries: counter("redrive_retries_scheduled_total",
			"Retries the retry middleware scheduled after a handler failed.", "topic", "handler"),
		poisoned: counter("redrive_messages_poisoned_total",
			"Messages the retry middleware sent to the poison topic, by reason (max_retries, max_elapsed_time, permanent, other).",
			"topic", "handler", "reason"),
		claimed: counter("redrive_messages_claimed_total",
			"Pending entries taken over from consumers of the group that stopped.", "topic", "consumer_group"),
		crashLoops: counter("redrive_messages_crash_looped_total",
			"Entries moved to the poison stream after MaxDeliveries deliveries that were never acked or nacked.",
			"topic", "consumer_group"),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redrive_metrics_read_errors_total", Help: "Failed reads of redrive's gauges from Redis.",
			ConstLabels: config.ConstLabels,
		}),

		streamEntries: gauge("redrive_stream_entries",
			"Entries in the topic's stream.", "topic"),
		delayed: gauge("redrive_delayed_messages",
			"Delayed messages waiting to enter the topic's stream.", "topic"),
		delayedRetries: gauge("redrive_delayed_retries",
			"Retries of the consumer group waiting for their due time.", "topic", "consumer_group"),
		pending: gauge("redrive_pending_messages",
			"Messages delivered to the consumer group and not yet acked, from the topic's stream and the group's retry stream.",
			"topic", "consumer_group"),
		lag: gauge("redrive_lag_messages",
			"Messages in the topic's stream and the group's retry stream not yet delivered to the consumer group.",
			"topic", "consumer_group"),
		consumers: gauge("redrive_consumers",
			"Consumers in the consumer group of the topic's stream.", "topic", "consumer_group"),
		poison: gauge("redrive_poison_messages",
			"Entries in the topic's poison stream.", "topic"),
		retained: gauge("redrive_retained_entries",
			"Entries the consumer group still needs (pending and unread) while the stream keeps entries older than the retention window for it; 0 when it holds nothing back.",
			"topic", "consumer_group"),
		retainedAge: gauge("redrive_retained_oldest_seconds",
			"Age of the oldest entry older than the retention window the stream keeps for the consumer group; 0 when none.",
			"topic", "consumer_group"),

		watched: map[string]map[string]bool{},
	}, nil
}

// Watch adds topic, and the given consumer groups of it, to the gauges read
// from Redis. Calling it again adds more groups.
func (c *Collector) Watch(topic string, groups ...string) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.watched[topic] == nil {
		c.watched[topic] = map[string]bool{}
	}
	for _, g := range groups {
		if g != "" {
			c.watched[topic][g] = true
		}
	}
}

// InstrumentRetry returns config with OnRetry and OnPoison counting into the
// collector, then calling the hooks config already had.
func (c *Collector) InstrumentRetry(config middleware.RetryConfig) middleware.RetryConfig {
	config.OnRetry = c.OnRetry(config.OnRetry)
	config.OnPoison = c.OnPoison(config.OnPoison)
	return config
}

// OnRetry returns a RetryConfig.OnRetry hook that counts the retry, then
// calls next (when not nil).
func (c *Collector) OnRetry(next func(middleware.RetryEvent)) func(middleware.RetryEvent) {
	return func(e middleware.RetryEvent) {
		c.retries.WithLabelValues(e.Topic, e.Handler).Inc()
		if next != nil {
			next(e)
		}
	}
}

// OnPoison returns a RetryConfig.OnPoison hook that counts the poisoned
// message, then calls next (when not nil).
func (c *Collector) OnPoison(next func(middleware.PoisonEvent)) func(middleware.PoisonEvent) {
	return func(e middleware.PoisonEvent) {
		c.poisoned.WithLabelValues(e.Topic, e.Handler, string(eventReason(e))).Inc()
		if next != nil {
			next(e)
		}
	}
}

// InstrumentSubscriber returns config with OnClaim and OnCrashLoop counting
// into the collector under config.ConsumerGroup, then calling the hooks
// config already had.
func (c *Collector) InstrumentSubscriber(config redrive.SubscriberConfig) redrive.SubscriberConfig {
	group := config.ConsumerGroup
	onClaim, onCrashLoop := config.OnClaim, config.OnCrashLoop
	config.OnClaim = func(topic string, n int) {
		c.claimed.WithLabelValues(topic, group).Add(float64(n))
		if onClaim != nil {
			onClaim(topic, n)
		}
	}
	config.OnCrashLoop = func(topic, entryID string) {
		c.crashLoops.WithLabelValues(topic, group).Inc()
		if onCrashLoop != nil {
			onCrashLoop(topic, entryID)
		}
	}
	return config
}

// eventReason is the event's ReasonCode; an event built without one (by
// hand, or by an older middleware) is read from its text.
func eventReason(e middleware.PoisonEvent) redrive.PoisonReason {
	if e.ReasonCode.Known() {
		return e.ReasonCode
	}
	return middleware.PoisonReasonFromText(e.Reason)
}

// PoisonReason maps a reason_poisoned text written by redrive to the reason
// label, a redrive.PoisonReason ("other" for text redrive did not write), so
// the label has few values. It is for messages poisoned before redrive wrote
// the code: prefer middleware.PoisonReasonOf on a message's metadata, or a
// PoisonEvent's ReasonCode.
func PoisonReason(reason string) string {
	return string(middleware.PoisonReasonFromText(reason))
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range c.counterVecs() {
		v.Describe(ch)
	}
	c.readErrors.Describe(ch)
	for _, d := range c.gaugeDescs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads the gauges from Redis
// when the last read is ReadInterval old or older.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.readGauges() {
		ch <- m
	}
	for _, v := range c.counterVecs() {
		v.Collect(ch)
	}
	c.readErrors.Collect(ch)
}

func (c *Collector) counterVecs() []*prometheus.CounterVec {
	return []*prometheus.CounterVec{c.retries, c.poisoned, c.claimed, c.crashLoops}
}

func (c *Collector) gaugeDescs() []*prometheus.Desc {
	return []*prometheus.Desc{c.streamEntries, c.delayed, c.delayedRetries, c.pending, c.lag, c.consumers, c.poison, c.retained, c.retainedAge}
}

// readGauges returns the gauges, read from Redis when the cached ones are
// ReadInterval old. A failed read reports no gauges until the next read.
func (c *Collector) readGauges() []prometheus.Metric {
	if c.config.Client == nil {
		return nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if !c.lastRead.IsZero() && time.Since(c.lastRead) < c.config.ReadInterval {
		return c.snapshot
	}
	c.lastRead = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.config.ReadTimeout)
	defer cancel()
	metrics, err := c.read(ctx)
	if err != nil {
		c.readErrors.Inc()
		c.logger.Error("Reading redrive's gauges from Redis failed", err, nil)
		c.snapshot = nil
		return nil
	}
	c.snapshot = metrics
	return metrics
}

// topicReads are the replies of one topic's commands in the pipeline.
type topicReads struct {
	topic    string
	length   *redis.IntCmd
	delayed  *redis.IntCmd
	poison   *redis.IntCmd
	groupsIn *redis.XInfoGroupsCmd
	groups   []groupReads
	// retention is the trimmer's script in its read-only mode.
	retention *redis.Cmd
}

type groupReads struct {
	group        string
	retryDelayed *redis.IntCmd
	retryLength  *redis.IntCmd
	retryGroups  *redis.XInfoGroupsCmd
}

// read reads every watched topic and group in one pipeline.
func (c *Collector) read(ctx context.Context) ([]prometheus.Metric, error) {
	c.watchMu.Lock()
	topics := slices.Sorted(maps.Keys(c.watched))
	groups := make(map[string][]string, len(topics))
	for _, t := range topics {
		groups[t] = slices.Sorted(maps.Keys(c.watched[t]))
	}
	c.watchMu.Unlock()
	if len(topics) == 0 {
		return nil, nil
	}

	pipe := c.config.Client.Pipeline()
	reads := make([]topicReads, 0, len(topics))
	for _, t := range topics {
		keys := redrive.KeysFor(t)
		tr := topicReads{
			topic:    t,
			length:   pipe.XLen(ctx, keys.Stream),
			delayed:  pipe.ZCard(ctx, keys.Delayed),
			poison:   pipe.XLen(ctx, keys.Poison),
			groupsIn: pipe.XInfoGroups(ctx, keys.Stream),
		}
		tr.retention = redrive.QueueRetentionReport(ctx, pipe, keys.Stream, c.config.RetainAcked)
		for _, g := range groups[t] {
			tr.groups = append(tr.groups, groupReads{
				group:        g,
				retryDelayed: pipe.ZCard(ctx, keys.GroupRetryDelayed(g)),
				retryLength:  pipe.XLen(ctx, keys.GroupRetry(g)),
				retryGroups:  pipe.XInfoGroups(ctx, keys.GroupRetry(g)),
			})
		}
		reads = append(reads, tr)
	}
	// Exec returns the first command's error. A reply error (such as XINFO
	// GROUPS on a stream that does not exist yet) is the command's own and
	// checked below; any other error (no connection) failed the whole read.
	if _, err := pipe.Exec(ctx); err != nil {
		var replyErr redis.Error
		if !errors.As(err, &replyErr) {
			return nil, fmt.Errorf("redrive/metrics: read gauges: %w", err)
		}
	}

	var out []prometheus.Metric
	gauge := func(desc *prometheus.Desc, v int64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), labels...))
	}
	for _, tr := range reads {
		for _, cmd := range []*redis.IntCmd{tr.length, tr.delayed, tr.poison} {
			if err := cmd.Err(); err != nil {
				return nil, fmt.Errorf("redrive/metrics: read %s of topic %q: %w", cmd.Name(), tr.topic, err)
			}
		}
		gauge(c.streamEntries, tr.length.Val(), tr.topic)
		gauge(c.delayed, tr.delayed.Val(), tr.topic)
		gauge(c.poison, tr.poison.Val(), tr.topic)
		streamGroups, err := infoGroups(tr.groupsIn)
		if err != nil {
			return nil, fmt.Errorf("redrive/metrics: read consumer groups of topic %q: %w", tr.topic, err)
		}
		retention, err := redrive.ParseRetentionReport(tr.topic, tr.retention)
		if err != nil {
			return nil, fmt.Errorf("redrive/metrics: %w", err)
		}
		for _, g := range retention.Groups {
			gauge(c.retained, g.Retained, tr.topic, g.Group)
			var age int64
			if g.HoldsBack {
				age = max(int64(time.Since(g.HeldSince).Seconds()), 0)
			}
			gauge(c.retainedAge, age, tr.topic, g.Group)
		}
		for _, gr := range tr.groups {
			for _, cmd := range []*redis.IntCmd{gr.retryDelayed, gr.retryLength} {
				if err := cmd.Err(); err != nil {
					return nil, fmt.Errorf("redrive/metrics: read %s of group %q of topic %q: %w", cmd.Name(), gr.group, tr.topic, err)
				}
			}
			gauge(c.delayedRetries, gr.retryDelayed.Val(), tr.topic, gr.group)
			retryGroups, err := infoGroups(gr.retryGroups)
			if err != nil {
				return nil, fmt.Errorf("redrive/metrics: read retry stream of group %q of topic %q: %w", gr.group, tr.topic, err)
			}
			info, ok := streamGroups[gr.group]
			if !ok {
				continue // the group does not exist yet
			}
			// Settled retries are deleted from the group's retry stream, so
			// what is in it is either pending or not yet delivered.
			retryPending := retryGroups[gr.group].Pending
			gauge(c.pending, info.Pending+retryPending, tr.topic, gr.group)
			if info.Lag >= 0 {
				gauge(c.lag, info.Lag+max(gr.retryLength.Val()-retryPending, 0), tr.topic, gr.group)
			}
			gauge(c.consumers, info.Consumers, tr.topic, gr.group)
		}
	}
	return out, nil
}

// infoGroups returns XINFO GROUPS by group name; a stream that does not
// exist has none.
func infoGroups(cmd *redis.XInfoGroupsCmd) (map[string]redis.XInfoGroup, error) {
	groups, err := cmd.Result()
	if err != nil {
		if redisinfo.IsNoSuchKey(err) {
			return map[string]redis.XInfoGroup{}, nil
		}
		return nil, err
	}
	byName := make(map[string]redis.XInfoGroup, len(groups))
	for _, g := range groups {
		byName[g.Name] = g
	}
	return byName, nil
}
