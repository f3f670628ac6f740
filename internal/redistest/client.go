package redistest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultAddr is where the shared test Redis listens on CI and on
// developer machines (see .ci/run).
const defaultAddr = "127.0.0.1:6379"

// pingTimeout bounds the first PING to the shared server so a missing Redis
// fails a test in seconds instead of hanging until the go test timeout.
const pingTimeout = 5 * time.Second

// Addr returns the address of the shared Redis server: $REDIS_ADDR when set,
// else 127.0.0.1:6379.
func Addr() string {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr
	}
	return defaultAddr
}

// NewClient returns a client connected to the shared server at Addr. It fails
// the test at once if the server does not answer PING, and closes the client
// in tb.Cleanup.
//
// The shared server is used by every test package at once: use RandomTopic
// for key names and never FLUSHALL or FLUSHDB through this client.
func NewClient(tb testing.TB) *redis.Client {
	tb.Helper()
	addr := Addr()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("redistest: no Redis answering PING at %s (set REDIS_ADDR, or start one as .ci/run does): %v", addr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
