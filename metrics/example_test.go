package metrics_test

import (
	"context"
	"net/http"
	"os"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/metrics"
	"github.com/redrive-go/redrive/router"
)

// A service registers the collector and hands it to the router, which feeds
// the counters from its handlers' hooks and watches their topics and groups.
func ExampleCollector() {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr()})
	collector, err := metrics.NewCollector(metrics.Config{Client: rdb}, nil)
	if err != nil {
		panic(err)
	}
	prometheus.MustRegister(collector)
	http.Handle("/metrics", promhttp.Handler())

	r, err := router.New(router.Config{Client: rdb, Metrics: collector}, nil)
	if err != nil {
		panic(err)
	}
	_, err = r.AddConsumerHandler("send-invoice", "orders", func(*message.Message) error { return nil })
	if err != nil {
		panic(err)
	}
	go func() { _ = http.ListenAndServe(":9090", nil) }()
	_ = r.Run(context.Background())
}

// redisAddr is the Redis the examples run against: $REDIS_ADDR, or
// 127.0.0.1:6379.
func redisAddr() string {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr
	}
	return "127.0.0.1:6379"
}
