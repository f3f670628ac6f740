package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/components/delay"
	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/metrics"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

// waitTimeout is a deadline, not a timing assertion: the scrape usually
// shows everything within a few seconds, and a loaded 2-core machine running
// the suite with -race must not fail it.
const waitTimeout = time.Minute

// scrape fetches url and returns each sample line as series → value, e.g.
// `redrive_delayed_messages{topic="t"}` → 1.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// lateString is a message argument computed when it is formatted.
type lateString func() string

func (f lateString) String() string { return f() }

// pipelineCounter counts the round trips of a client.
type pipelineCounter struct {
	commands, pipelines atomic.Int32
}

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.commands.Add(1)
		return next(ctx, cmd)
	}
}
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

func cleanupTopic(t *testing.T, rdb redis.UniversalClient, topic string, groups ...string) {
	t.Cleanup(func() {
		keys := redrive.KeysFor(topic)
		del := []string{keys.Stream, keys.Delayed, keys.Poison}
		for _, g := range groups {
			del = append(del, keys.GroupRetry(g), keys.GroupRetryDelayed(g))
		}
		for _, k := range del {
			rdb.Del(context.Background(), k)
		}
	})
}

// TestScrapeThroughTheRouter runs handlers that retry, poison, claim a dead
// consumer's messages and crash-loop, beside Watermill's own metrics, and
// checks every redrive series a scrape returns.
func TestScrapeThroughTheRouter(t *testing.T) {
	rdb := redistest.NewClient(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("metrics-")
	claimTopic := redistest.RandomTopic("metrics-claim-")
	cleanupTopic(t, rdb, topic, "flaky", "doomed", "slow", "idle")
	cleanupTopic(t, rdb, claimTopic, "rescuer")

	// A client of its own for the collector, to count its round trips.
	collectorClient := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer collectorClient.Close()
	counter := &pipelineCounter{}
	collectorClient.AddHook(counter)
	collector, err := metrics.NewCollector(metrics.Config{Client: collectorClient, ReadInterval: time.Nanosecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer server.Close()

	// Before the router runs: a dead consumer of the group "rescuer" holds
	// two entries of claimTopic, one of them delivered twice already.
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(claimTopic, message.NewMessage("abandoned", nil), message.NewMessage("crashes-workers", nil)); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XGroupCreateMkStream(ctx, claimTopic, "rescuer", "0").Err(); err != nil {
		t.Fatal(err)
	}
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "rescuer", Consumer: "dead", Streams: []string{claimTopic, ">"}, Count: 2}).Result()
	if err != nil || len(read[0].Messages) != 2 {
		t.Fatalf("XREADGROUP as the dead consumer: %v %v", read, err)
	}
	if err := rdb.XClaim(ctx, &redis.XClaimArgs{Stream: claimTopic, Group: "rescuer", Consumer: "dead", Messages: []string{read[0].Messages[1].ID}}).Err(); err != nil {
		t.Fatal(err)
	}
	// The group "idle" is watched but runs no handler: everything published
	// from now on is lag.
	if err := rdb.XGroupCreateMkStream(ctx, topic, "idle", "$").Err(); err != nil {
		t.Fatal(err)
	}
	collector.Watch(topic, "idle")

	wr, err := message.NewRouter(message.RouterConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Watermill's own metrics in the same registry: no name clashes.
	wmetrics.NewPrometheusMetricsBuilder(registry, "", "").AddPrometheusRouterMetrics(wr)

	userRetries := atomic.Int32{}
	r, err := router.New(router.Config{
		Client:  rdb,
		Router:  wr,
		Metrics: collector,
		Retry: middleware.RetryConfig{
			MaxRetries:      1,
			InitialInterval: 10 * time.Millisecond,
			OnRetry:         func(middleware.RetryEvent) { userRetries.Add(1) },
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var flakyCalls atomic.Int32
	var flakyDone atomic.Bool
	add := func(name, topic string, h message.NoPublishHandlerFunc, opts ...router.HandlerOption) {
		t.Helper()
		if _, err := r.AddConsumerHandler(name, topic, h, opts...); err != nil {
			t.Fatal(err)
		}
	}
	add("flaky", topic, func(msg *message.Message) error {
		if msg.UUID != "m" {
			return nil
		}
		if flakyCalls.Add(1) == 1 {
			return errors.New("first time fails")
		}
		flakyDone.Store(true)
		return nil
	})
	add("doomed", topic, func(msg *message.Message) error {
		if msg.UUID == "bad-input" {
			return middleware.Permanent(errors.New("bad input"))
		}
		return errors.New("always fails")
	})
	release := make(chan struct{})
	// Released before the router closes even when the test fails early:
	// closing waits for the handler.
	releaseSlow := sync.OnceFunc(func() { close(release) })
	defer releaseSlow()
	add("slow", topic, func(msg *message.Message) error {
		if msg.UUID == "m" {
			<-release
			return nil
		}
		// Retried in an hour: waits in the group's retry set.
		return errors.New("later")
	}, router.WithRetry(middleware.RetryConfig{InitialInterval: time.Hour, MaxInterval: time.Hour}))
	add("rescuer", claimTopic, func(*message.Message) error { return nil },
		router.WithSubscriberConfig(redrive.SubscriberConfig{
			ClaimInterval: 20 * time.Millisecond,
			// Long enough that the dead consumer's entries become idle
			// after the rescuer's start (a claim racing the reader's first
			// read of its own pending entries delivers "abandoned" twice
			// and crash-loops it), and that no stall of a loaded machine
			// gives a claimed entry back (after MaxIdleTime/2 untaken) or
			// lets it look abandoned again before its ack.
			MaxIdleTime:   2 * time.Second,
			MaxDeliveries: 2,
		}))

	ctxRun, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = r.Run(ctxRun) }()
	<-r.Running()

	delayed := message.NewMessage("later", nil)
	delay.Message(delayed, delay.For(time.Hour))
	if err := pub.Publish(topic, message.NewMessage("m", nil), message.NewMessage("bad-input", nil), delayed); err != nil {
		t.Fatal(err)
	}

	var samples map[string]float64
	want := map[string]float64{
		`redrive_retries_scheduled_total{handler="flaky",topic="` + topic + `"}`:                       1,
		`redrive_retries_scheduled_total{handler="doomed",topic="` + topic + `"}`:                      1,
		`redrive_retries_scheduled_total{handler="slow",topic="` + topic + `"}`:                        1,
		`redrive_messages_poisoned_total{handler="doomed",reason="max_retries",topic="` + topic + `"}`: 1,
		`redrive_messages_poisoned_total{handler="doomed",reason="permanent",topic="` + topic + `"}`:   1,
		`redrive_messages_claimed_total{consumer_group="rescuer",topic="` + claimTopic + `"}`:          1,
		`redrive_messages_crash_looped_total{consumer_group="rescuer",topic="` + claimTopic + `"}`:     1,
		`redrive_stream_entries{topic="` + topic + `"}`:                                                2,
		`redrive_delayed_messages{topic="` + topic + `"}`:                                              1,
		`redrive_poison_messages{topic="` + topic + `"}`:                                               2,
		`redrive_delayed_retries{consumer_group="slow",topic="` + topic + `"}`:                         1,
		`redrive_delayed_retries{consumer_group="flaky",topic="` + topic + `"}`:                        0,
		`redrive_pending_messages{consumer_group="slow",topic="` + topic + `"}`:                        1,
		`redrive_pending_messages{consumer_group="flaky",topic="` + topic + `"}`:                       0,
		`redrive_pending_messages{consumer_group="doomed",topic="` + topic + `"}`:                      0,
		`redrive_pending_messages{consumer_group="idle",topic="` + topic + `"}`:                        0,
		`redrive_lag_messages{consumer_group="idle",topic="` + topic + `"}`:                            2,
		`redrive_lag_messages{consumer_group="flaky",topic="` + topic + `"}`:                           0,
		`redrive_lag_messages{consumer_group="slow",topic="` + topic + `"}`:                            0,
		`redrive_consumers{consumer_group="idle",topic="` + topic + `"}`:                               0,
		`redrive_consumers{consumer_group="slow",topic="` + topic + `"}`:                               1,
		`redrive_stream_entries{topic="` + claimTopic + `"}`:                                           2,
		`redrive_poison_messages{topic="` + claimTopic + `"}`:                                          1,
		`redrive_pending_messages{consumer_group="rescuer",topic="` + claimTopic + `"}`:                0,
		`redrive_metrics_read_errors_total`:                                                            0,
	}
	// mismatch lists what the last scrape still lacks, sorted.
	mismatch := func() string {
		var diffs []string
		for series, v := range want {
			got, ok := samples[series]
			if !ok {
				diffs = append(diffs, series+" missing")
			} else if got != v {
				diffs = append(diffs, series+" = "+strconv.FormatFloat(got, 'g', -1, 64)+", want "+strconv.FormatFloat(v, 'g', -1, 64))
			}
		}
		sort.Strings(diffs)
		if !flakyDone.Load() {
			diffs = append(diffs, "the flaky handler has not succeeded yet")
		}
		return strings.Join(diffs, "\n")
	}
	// WaitFor formats its message only when the wait has run out, so
	// lateString reports the differences of the last scrape, not of none.
	redistest.WaitFor(t, waitTimeout, func() bool {
		samples = scrape(t, server.URL)
		return mismatch() == ""
	}, "the scrape to show every expected value; differences in the last scrape:\n%s", lateString(mismatch))
	if userRetries.Load() != 2 {
		t.Errorf("the user's OnRetry hook ran %d times, want 2 (flaky and doomed; slow has its own policy)", userRetries.Load())
	}
	if _, ok := samples[`handler_execution_time_seconds_count{handler_name="flaky",success="true"}`]; !ok {
		t.Error("Watermill's handler metrics are missing from the same registry")
	}
	releaseSlow()

	// One read of every gauge is one pipeline, and nothing else.
	commands, pipelines := counter.commands.Load(), counter.pipelines.Load()
	scrape(t, server.URL)
	if c, p := counter.commands.Load()-commands, counter.pipelines.Load()-pipelines; c != 0 || p != 1 {
		t.Errorf("one scrape sent %d commands and %d pipelines, want 0 and 1", c, p)
	}
}

func TestGaugesAreReadAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("metrics-cache-")
	cleanupTopic(t, rdb, topic)
	counter := &pipelineCounter{}
	client := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer client.Close()
	client.AddHook(counter)

	collector, err := metrics.NewCollector(metrics.Config{Client: client, ReadInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	collector.Watch(topic)
	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()

	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: topic, Values: map[string]any{"a": "1"}})
	series := `redrive_stream_entries{topic="` + topic + `"}`
	if got := scrape(t, server.URL)[series]; got != 1 {
		t.Fatalf("%s = %v, want 1", series, got)
	}
	pipelines := counter.pipelines.Load()
	rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: topic, Values: map[string]any{"a": "2"}})
	for range 3 {
		if got := scrape(t, server.URL)[series]; got != 1 {
			t.Fatalf("%s = %v within the read interval, want the cached 1", series, got)
		}
	}
	if p := counter.pipelines.Load() - pipelines; p != 0 {
		t.Errorf("3 scrapes within the read interval read Redis %d times, want 0", p)
	}
}

func TestReadErrorIsCountedAndCountersStay(t *testing.T) {
	t.Parallel()
	// Nothing listens on this port: every read fails at once.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer client.Close()
	collector, err := metrics.NewCollector(metrics.Config{
		Client: client, ReadInterval: time.Nanosecond,
		ConstLabels: prometheus.Labels{"service": "billing"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	collector.Watch("orders", "g")
	collector.OnRetry(nil)(middleware.RetryEvent{Topic: "orders", Handler: "h"})
	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer server.Close()

	samples := scrape(t, server.URL)
	if got := samples[`redrive_metrics_read_errors_total{service="billing"}`]; got != 1 {
		t.Errorf("read errors = %v, want 1 (samples %v)", got, samples)
	}
	if got := samples[`redrive_retries_scheduled_total{handler="h",service="billing",topic="orders"}`]; got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	for series := range samples {
		if strings.HasPrefix(series, "redrive_stream_entries") {
			t.Errorf("a gauge was reported after a failed read: %s", series)
		}
	}
}

func TestHooksChainToTheUsersHooks(t *testing.T) {
	t.Parallel()
	collector, err := metrics.NewCollector(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var retried, poisoned, claimed, crashed int
	retry := collector.InstrumentRetry(middleware.RetryConfig{
		OnRetry:  func(middleware.RetryEvent) { retried++ },
		OnPoison: func(middleware.PoisonEvent) { poisoned++ },
	})
	sub := collector.InstrumentSubscriber(redrive.SubscriberConfig{
		ConsumerGroup: "g",
		OnClaim:       func(string, int) { claimed++ },
		OnCrashLoop:   func(string, string) { crashed++ },
	})
	retry.OnRetry(middleware.RetryEvent{Topic: "t", Handler: "h"})
	retry.OnPoison(middleware.PoisonEvent{Topic: "t", Handler: "h", Reason: "max elapsed time exceeded (1m0s)"})
	sub.OnClaim("t", 3)
	sub.OnCrashLoop("t", "1-0")
	if retried != 1 || poisoned != 1 || claimed != 1 || crashed != 1 {
		t.Errorf("user hooks ran retry %d, poison %d, claim %d, crash loop %d times; want 1 each", retried, poisoned, claimed, crashed)
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()
	samples := scrape(t, server.URL)
	for series, v := range map[string]float64{
		`redrive_retries_scheduled_total{handler="h",topic="t"}`:                           1,
		`redrive_messages_poisoned_total{handler="h",reason="max_elapsed_time",topic="t"}`: 1,
		`redrive_messages_claimed_total{consumer_group="g",topic="t"}`:                     3,
		`redrive_messages_crash_looped_total{consumer_group="g",topic="t"}`:                1,
	} {
		if samples[series] != v {
			t.Errorf("%s = %v, want %v", series, samples[series], v)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		config metrics.Config
		want   string
	}{
		{metrics.Config{ReadInterval: -time.Second}, "Config.ReadInterval"},
		{metrics.Config{ReadTimeout: -time.Second}, "Config.ReadTimeout"},
	} {
		if _, err := metrics.NewCollector(c.config, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewCollector(%+v) = %v, want an error naming %s", c.config, err, c.want)
		}
	}
	for reason, want := range map[string]string{
		middleware.ReasonMaxRetries + " (5)":       metrics.ReasonMaxRetries,
		middleware.ReasonMaxElapsedTime + " (1h)":  metrics.ReasonMaxElapsedTime,
		middleware.ReasonPermanent + ": bad input": metrics.ReasonPermanent,
		"something else":                           "other",
	} {
		if got := metrics.PoisonReason(reason); got != want {
			t.Errorf("PoisonReason(%q) = %q, want %q", reason, got, want)
		}
	}
}
