package metrics_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/metrics"
)

// A group nobody watches that stopped reading shows in the retained gauges
// of a watched topic; a group that finished shows 0.
func TestRetainedEntriesGauge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("metrics-retained-")
	cleanupTopic(t, client, topic)
	for _, g := range []string{"live", "stopped"} {
		if err := client.XGroupCreateMkStream(ctx, topic, g, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	oldest := time.Now().Add(-time.Hour)
	for i := 1; i <= 12; i++ {
		client.XAdd(ctx, &redis.XAddArgs{Stream: topic, ID: fmt.Sprintf("%d-%d", oldest.UnixMilli(), i), Values: map[string]any{"payload": "p"}})
	}
	res, err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "live", Consumer: "c", Streams: []string{topic, ">"}, Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res[0].Messages {
		client.XAck(ctx, topic, "live", m.ID)
	}
	// stopped read 2 and never acked them: 2 pending, 10 unread.
	client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "stopped", Consumer: "c", Streams: []string{topic, ">"}, Count: 2})

	collector, err := metrics.NewCollector(metrics.Config{Client: client, RetainAcked: time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	collector.Watch(topic, "live")
	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()
	samples := scrape(t, server.URL)
	labels := func(g string) string { return `{consumer_group="` + g + `",topic="` + topic + `"}` }
	if got := samples["redrive_retained_entries"+labels("stopped")]; got != 12 {
		t.Errorf("retained entries of the stopped group = %v, want 12", got)
	}
	if got := samples["redrive_retained_entries"+labels("live")]; got != 0 {
		t.Errorf("retained entries of the live group = %v, want 0", got)
	}
	if age := samples["redrive_retained_oldest_seconds"+labels("stopped")]; age < 3500 {
		t.Errorf("oldest retained age of the stopped group = %vs, want about an hour", age)
	}
	if _, err := metrics.NewCollector(metrics.Config{RetainAcked: -time.Second}, nil); err == nil {
		t.Error("negative RetainAcked accepted")
	}
}
