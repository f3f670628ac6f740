package main

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// cmdCounts maps a lower-case command name to a count.
type cmdCounts map[string]int64

func (c cmdCounts) total() int64 {
	var t int64
	for _, v := range c {
		t += v
	}
	return t
}

// sub returns c - before, keeping only positive differences.
func (c cmdCounts) sub(before cmdCounts) cmdCounts {
	d := cmdCounts{}
	for k, v := range c {
		if v -= before[k]; v > 0 {
			d[k] = v
		}
	}
	return d
}

// top formats the n largest counts, largest first: "xack 78, xreadgroup 201".
func (c cmdCounts) top(n int) string {
	names := slices.Collect(maps.Keys(c))
	slices.SortFunc(names, func(a, b string) int {
		if c[a] != c[b] {
			return int(c[b] - c[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for i, name := range names {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, name+" "+strconv.FormatInt(c[name], 10))
	}
	return strings.Join(parts, ", ")
}

// cmdCounter is a go-redis hook that counts the commands a client sends,
// pipelined or not. A Lua script counts once here (EVALSHA), while the
// server's commandstats also counts every command the script runs.
type cmdCounter struct {
	counts sync.Map // name -> *atomic.Int64
}

func newCmdCounter() *cmdCounter { return &cmdCounter{} }

func (c *cmdCounter) add(cmd redis.Cmder) {
	name := cmd.Name()
	v, ok := c.counts.Load(name)
	if !ok {
		v, _ = c.counts.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

func (c *cmdCounter) snapshot() cmdCounts {
	out := cmdCounts{}
	c.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.add(cmd)
		}
		return next(ctx, cmds)
	}
}

// serverCommandStats reads INFO commandstats: calls per command, for every
// client of the server. The INFO call itself is counted by the server after
// it answers, so the next snapshot sees one more "info".
func serverCommandStats(ctx context.Context, c redis.UniversalClient) (cmdCounts, error) {
	text, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := cmdCounts{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err == nil {
					out[name] = n
				}
			}
		}
	}
	return out, nil
}

// serverDelta is after - before without the benchmark's own INFO calls
// (ownInfo of them, counting the one that took before).
func serverDelta(before, after cmdCounts, ownInfo int64) cmdCounts {
	d := after.sub(before)
	if d["info"] -= min(ownInfo, d["info"]); d["info"] == 0 {
		delete(d, "info")
	}
	return d
}
