package metrics_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	redistest.AddEntriesAt(t, client, topic, time.Now().Add(-time.Hour).UnixMilli(), 12)
	redistest.Ack(t, client, topic, "live", redistest.ReadGroup(t, client, topic, "live", 100)...)
	redistest.ReadGroup(t, client, topic, "stopped", 2) // 2 pending, 10 unread

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
