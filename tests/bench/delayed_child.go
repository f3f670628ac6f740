package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// delayedChildArg makes this program the publisher of the cross-process
// delayed workload: it publishes and prints what it did on stdout.
const delayedChildArg = "-delayed-publisher-child"

// publishDelayedInChild runs this program again as the publisher of the
// delayed workload and reads back how many it published, the latest due time
// and its rate.
func publishDelayedInChild(ctx context.Context, cfg config, topic string, total int) (int, time.Time, float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, time.Time{}, 0, err
	}
	cmd := exec.CommandContext(ctx, exe, delayedChildArg, cfg.addr, topic, strconv.Itoa(total),
		strconv.Itoa(cfg.delayedRate), cfg.delay.String(), cfg.delayJitter.String(), strconv.Itoa(cfg.size))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, time.Time{}, 0, fmt.Errorf("publisher process: %w", err)
	}
	var (
		published int
		lastDue   int64
		rate      float64
	)
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &published, &lastDue, &rate); err != nil {
		return 0, time.Time{}, 0, fmt.Errorf("publisher process answered %q: %w", out, err)
	}
	return published, time.Unix(0, lastDue), rate, nil
}

// runDelayedChild is the publisher process: args are the Redis address, the
// topic, how many to publish, the rate, the delay, the jitter and the payload
// size.
func runDelayedChild(args []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "delayed publisher:", err)
		return 1
	}
	if len(args) != 7 {
		return fail(fmt.Errorf("want 7 arguments, got %d", len(args)))
	}
	var cfg config
	var err error
	total, err1 := strconv.Atoi(args[2])
	cfg.delayedRate, err = strconv.Atoi(args[3])
	cfg.delay, err = joinErr(err, args[4])
	cfg.delayJitter, err = joinErr(err, args[5])
	size, err2 := strconv.Atoi(args[6])
	if err != nil || err1 != nil || err2 != nil {
		return fail(fmt.Errorf("bad arguments %v", args))
	}
	client := redis.NewClient(&redis.Options{Addr: args[0]})
	defer client.Close()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		return fail(err)
	}
	defer pub.Close()
	published, lastDue, rate, err := publishDelayed(context.Background(), pub, args[1], total, cfg, make([]byte, size))
	if err != nil {
		return fail(err)
	}
	fmt.Println(published, lastDue.UnixNano(), rate)
	return 0
}

// joinErr parses a duration unless an earlier parse failed.
func joinErr(prev error, text string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	if prev != nil {
		return d, prev
	}
	return d, err
}
