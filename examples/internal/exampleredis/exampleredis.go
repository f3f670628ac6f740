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
	"strings"
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
	rdb.AddHook(cmsgpackShim{})
	return rdb, func() {
		_ = rdb.Close()
		mini.Close()
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

// cmsgpackShim makes redrive's Lua scripts run on miniredis, whose Lua has no
// cmsgpack library: it prepends a small msgpack decoder to every script that
// uses cmsgpack. EVALSHA of such a script finds nothing cached under the
// original SHA, so go-redis falls back to EVAL, which passes through here.
type cmsgpackShim struct{}

func (cmsgpackShim) DialHook(next redis.DialHook) redis.DialHook { return next }

func (cmsgpackShim) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		shimScript(cmd)
		return next(ctx, cmd)
	}
}

func (cmsgpackShim) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			shimScript(cmd)
		}
		return next(ctx, cmds)
	}
}

func shimScript(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) < 2 || !strings.EqualFold(fmt.Sprint(args[0]), "eval") {
		return
	}
	if src, ok := args[1].(string); ok && strings.Contains(src, "cmsgpack.") {
		args[1] = luaMsgpack + src
	}
}

// luaMsgpack defines cmsgpack.unpack for the msgpack redrive writes: arrays,
// strings, binaries, integers, booleans and nil.
const luaMsgpack = `
local cmsgpack = {}
do
  local byte, sub = string.byte, string.sub
  local function uint(s, i, n)
    local v = 0
    for k = i, i + n - 1 do v = v * 256 + byte(s, k) end
    return v
  end
  local decode
  local function array(s, i, n)
    local t = {}
    for k = 1, n do t[k], i = decode(s, i) end
    return t, i
  end
  local function str(s, i, n) return sub(s, i, i + n - 1), i + n end
  decode = function(s, i)
    local b = byte(s, i)
    if b == nil then error('msgpack: truncated') end
    if b <= 0x7f then return b, i + 1 end
    if b >= 0xe0 then return b - 256, i + 1 end
    if b >= 0xa0 and b <= 0xbf then return str(s, i + 1, b - 0xa0) end
    if b >= 0x90 and b <= 0x9f then return array(s, i + 1, b - 0x90) end
    if b == 0xc0 then return nil, i + 1 end
    if b == 0xc2 then return false, i + 1 end
    if b == 0xc3 then return true, i + 1 end
    if b == 0xc4 or b == 0xd9 then return str(s, i + 2, uint(s, i + 1, 1)) end
    if b == 0xc5 or b == 0xda then return str(s, i + 3, uint(s, i + 1, 2)) end
    if b == 0xc6 or b == 0xdb then return str(s, i + 5, uint(s, i + 1, 4)) end
    if b == 0xdc then return array(s, i + 3, uint(s, i + 1, 2)) end
    if b == 0xdd then return array(s, i + 5, uint(s, i + 1, 4)) end
    if b == 0xcc then return uint(s, i + 1, 1), i + 2 end
    if b == 0xcd then return uint(s, i + 1, 2), i + 3 end
    if b == 0xce then return uint(s, i + 1, 4), i + 5 end
    error('msgpack: unsupported type ' .. b)
  end
  cmsgpack.unpack = function(s) return (decode(s, 1)) end
end
`
