package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// idleSettle is how long the idle subscriptions run before the window opens,
// so the commands of subscribing (group creation, the first reads, the
// version check) are not counted.
const idleSettle = 3 * time.Second

// idleSide is one side of the idle workload.
type idleSide struct {
	Subscriptions int       `json:"subscriptions"`
	WindowSeconds float64   `json:"window_seconds"`
	Commands      int64     `json:"commands"`
	PerSubPerSec  float64   `json:"commands_per_subscription_per_s"`
	ByCommand     cmdCounts `json:"by_command"`
	Error         string    `json:"error,omitempty"`
}

// idleReport is what idle subscriptions cost a Redis server that serves
// nothing else.
type idleReport struct {
	Sides  map[string]*idleSide `json:"sides"`
	Target target               `json:"redrive_target"`
}

// idleWorkload starts a redis-server of its own (so no other client's
// commands count), and for each side subscribes -idle-subs subscriptions,
// one topic and consumer group each, with default settings and nothing to
// read, then counts the commands the server ran over -idle-window.
func (b *bench) idleWorkload(ctx context.Context) *idleReport {
	rep := &idleReport{Sides: map[string]*idleSide{}, Target: atMost(0.5, " cmds/s")}
	addr, stop, err := startQuietServer(ctx)
	if err != nil {
		rep.Sides[sideRedrive] = &idleSide{Error: "start redis-server: " + err.Error()}
		return rep
	}
	defer stop()
	for _, s := range subscribingSides(b.sides) {
		if ctx.Err() != nil {
			break
		}
		b.progress("idle: %s, %d subscriptions, %s window", s.name, b.cfg.idleSubs, b.cfg.idleWindow)
		r := b.idleRun(ctx, s.name, addr)
		b.progress("idle: %s: %.3f commands/s per subscription (%s)", s.name, r.PerSubPerSec, r.ByCommand.top(6))
		rep.Sides[s.name] = r
	}
	if r := rep.Sides[sideRedrive]; r != nil && r.Error == "" {
		rep.Target.check(r.PerSubPerSec, true)
	}
	return rep
}

func (b *bench) idleRun(ctx context.Context, sideName, addr string) *idleSide {
	r := &idleSide{Subscriptions: b.cfg.idleSubs}
	// Every subscription keeps a blocking read open: give the pool a
	// connection for each.
	client := redis.NewClient(&redis.Options{Addr: addr, PoolSize: b.cfg.idleSubs + 10})
	defer client.Close()
	subs := make([]message.Subscriber, 0, b.cfg.idleSubs)
	defer func() {
		for _, sub := range subs {
			_ = sub.Close()
		}
	}()
	for i := range b.cfg.idleSubs {
		sub, err := newIdleSubscriber(sideName, client)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		subs = append(subs, sub)
		if _, err := sub.Subscribe(ctx, fmt.Sprintf("%s-idle-%s-%d", b.prefix, sideName, i)); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	if err := sleepCtx(ctx, idleSettle); err != nil {
		r.Error = err.Error()
		return r
	}
	before, err := serverCommandStats(ctx, client)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	start := time.Now()
	if err := sleepCtx(ctx, b.cfg.idleWindow); err != nil {
		r.Error = err.Error()
		return r
	}
	after, err := serverCommandStats(ctx, client)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	window := time.Since(start)
	r.ByCommand = serverDelta(before, after, 1)
	r.Commands = r.ByCommand.total()
	r.WindowSeconds = window.Seconds()
	r.PerSubPerSec = float64(r.Commands) / window.Seconds() / float64(b.cfg.idleSubs)
	return r
}

// sleepCtx waits d, or returns ctx's error when it ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newIdleSubscriber is a consumer-group subscriber of the side with its
// default settings.
func newIdleSubscriber(sideName string, client redis.UniversalClient) (message.Subscriber, error) {
	if sideName == sideAnchor {
		return redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: noCloseClient{client.(*redis.Client)}, ConsumerGroup: "idle"}, watermill.NopLogger{})
	}
	return redrive.NewSubscriber(redrive.SubscriberConfig{Client: client, ConsumerGroup: "idle"}, watermill.NopLogger{})
}

// startQuietServer starts a throwaway redis-server on a free loopback port,
// without persistence, and returns its address and how to stop it.
func startQuietServer(ctx context.Context) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, err := os.MkdirTemp("", "redrive-bench-idle-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	probe := redis.NewClient(&redis.Options{Addr: addr})
	defer probe.Close()
	deadline := time.Now().Add(10 * time.Second)
	for probe.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, stop, nil
}

func writeIdle(w io.Writer, rep *idleReport) {
	fmt.Fprintln(w, "IDLE COST: commands per second that idle subscriptions (one topic and consumer group each, default")
	fmt.Fprintln(w, "  settings, nothing to read) cost a redis-server of the benchmark's own, counted by INFO commandstats")
	for _, name := range []string{sideAnchor, sideRedrive} {
		r := rep.Sides[name]
		if r == nil {
			continue
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  %-12s ERROR: %s\n", name+":", r.Error)
			continue
		}
		fmt.Fprintf(w, "  %-12s %.3f per subscription (%d subscriptions, %s commands in %.0f s: %s)\n",
			name+":", r.PerSubPerSec, r.Subscriptions, groupDigits(r.Commands), r.WindowSeconds, r.ByCommand.top(6))
	}
	fmt.Fprintf(w, "  redrive target %s per subscription: %s\n\n", rep.Target, rep.Target.Verdict)
}
