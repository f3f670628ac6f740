package metrics_test

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/metrics"
	"github.com/redrive-go/redrive/middleware"
)

// The reason label comes from the event's code, not its text: a text that
// reads like another reason (the handler's error is part of it) must not
// move the count.
func TestPoisonedCounterUsesTheReasonCode(t *testing.T) {
	t.Parallel()
	collector, err := metrics.NewCollector(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	onPoison := collector.OnPoison(nil)
	onPoison(middleware.PoisonEvent{Topic: "t", Handler: "h", ReasonCode: redrive.PoisonReasonPermanent,
		Reason: "permanent error (ShouldRetry): max retries exceeded upstream"})
	onPoison(middleware.PoisonEvent{Topic: "t", Handler: "h", ReasonCode: redrive.PoisonReasonMaxRetries,
		Reason: "written by a custom hook"})
	// No code (an older middleware or a hand-made event): read from the text.
	onPoison(middleware.PoisonEvent{Topic: "t", Handler: "h", Reason: middleware.ReasonMaxElapsedTime + " (1m0s): slow"})
	onPoison(middleware.PoisonEvent{Topic: "t", Handler: "h", Reason: "no idea"})

	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()
	samples := scrape(t, server.URL)
	for _, reason := range []string{metrics.ReasonPermanent, metrics.ReasonMaxRetries, metrics.ReasonMaxElapsedTime, string(redrive.PoisonReasonOther)} {
		series := `redrive_messages_poisoned_total{handler="h",reason="` + reason + `",topic="t"}`
		if samples[series] != 1 {
			t.Errorf("%s = %v, want 1", series, samples[series])
		}
	}
}
