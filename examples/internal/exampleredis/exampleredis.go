// Package exampleredis gives redrive's examples a Redis to run against: the
// one at REDIS_ADDR (default 127.0.0.1:6379) when it answers, else an
// embedded in-memory Redis, so every example runs on a fresh machine.
package exampleredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// DefaultAddr is used when REDIS_ADDR is not set.
const DefaultAddr = "127.0.0.1:6379"

// pingTimeout is how long Connect waits for a Redis at REDIS_ADDR to answer.
const pingTimeout = 500 * time.Millisecond

// Connect returns a client for the Redis at REDIS_ADDR when it answers PING,
// else for an embedded in-memory Redis (miniredis), and prints one line saying
// which. The returned func closes the client and stops the embedded server.
func Connect() (*redis.Client, func()) {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	if answers(addr) {
		fmt.Printf("Redis: %s\n", addr)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		return rdb, func() { _ = rdb.Close() }
	}

	mini := miniredis.NewMiniRedis()
	if err := mini.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "No Redis answered at %s, and the embedded one failed to start: %v\n", addr, err)
		os.Exit(1)
	}
	fmt.Printf("Redis: none answered at %s, so using an embedded in-memory Redis (miniredis)\n", addr)
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	return rdb, func() {
		_ = rdb.Close()
		mini.Close()
	}
}

// Setup is what an example on one topic needs first: a client (see
// Connect) and a fresh topic name (see Topic). The returned func deletes the
// keys redrive made for the topic and the consumer groups (see Cleanup) and
// closes the client.
func Setup(name string, groups ...string) (rdb *redis.Client, topic string, done func()) {
	rdb, closeRedis := Connect()
	topic = Topic(name)
	return rdb, topic, func() {
		Cleanup(rdb, topic, groups...)
		closeRedis()
	}
}

// answers reports whether a Redis answers PING at addr. It dials first, so
// a closed port costs no retries and logs nothing.
func answers(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, pingTimeout)
	if err != nil {
		return false
	}
	_ = conn.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	return rdb.Ping(ctx).Err() == nil
}

// Topic returns name with a random suffix, so an example run never meets the
// keys of an earlier run on a shared Redis.
func Topic(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// Cleanup deletes every key redrive made for topic and the consumer groups:
// the stream, its delayed set and poison stream, and each group's retry
// stream and retry set.
func Cleanup(rdb redis.UniversalClient, topic string, groups ...string) {
	keys := redrive.KeysFor(topic)
	del := []string{keys.Stream, keys.Delayed, keys.Poison}
	for _, g := range groups {
		del = append(del, keys.GroupRetry(g), keys.GroupRetryDelayed(g))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, k := range del {
		_ = rdb.Del(ctx, k).Err()
	}
}
