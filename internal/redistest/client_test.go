package redistest

import (
	"context"
	"testing"
	"time"
)

func TestAddr(t *testing.T) {
	t.Setenv("REDIS_ADDR", "")
	if got := Addr(); got != "127.0.0.1:6379" {
		t.Errorf("Addr() without REDIS_ADDR = %q, want 127.0.0.1:6379", got)
	}
	t.Setenv("REDIS_ADDR", "10.1.2.3:7000")
	if got := Addr(); got != "10.1.2.3:7000" {
		t.Errorf("Addr() with REDIS_ADDR=10.1.2.3:7000 = %q", got)
	}
}

func TestNewClient(t *testing.T) {
	c := NewClient(t)
	ctx := context.Background()
	// The shared server is shared: a random, expiring key and no flushing.
	key := RandomTopic("redistest-newclient-")
	if err := c.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET on shared server: %v", err)
	}
	t.Cleanup(func() { c.Del(context.Background(), key) })
	if got, err := c.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
}
