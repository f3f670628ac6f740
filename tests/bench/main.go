// Command bench runs the same workloads against redrive and
// watermill-redisstream (the anchor) in one run, on one Redis, and prints
// msg/s for each side, the ratio redrive/anchor and the performance targets
// (throughput and retry) with PASS or MISS.
//
//	go -C tests/bench run .                    # publish and consume workloads
//	go -C tests/bench run . -retry             # also the retry and delayed-delivery workloads
//	go -C tests/bench run . -only consume -count 3
//	go -C tests/bench run . -retry -json > bench.json
//
// Redis is REDIS_ADDR (default 127.0.0.1:6379). The server is never flushed:
// every key the benchmark writes carries the run's random ID, and all of them
// are deleted at the end. It is a benchmark program, not a timed test.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redrive-go/redrive/internal/redistest"
)

// Workload names, as -only takes them.
const (
	wSequential = "seq"
	wBatch      = "batch"
	wConcurrent = "conc"
	wConsume    = "consume"
	wRetry      = "retry"
	wDelayed    = "delayed"
	wIdle       = "idle"
	// wDelayedCross is the delayed workload with the publisher in another
	// process.
	wDelayedCross = "delayed-xproc"
)

var (
	defaultWorkloads = []string{wSequential, wBatch, wConcurrent, wConsume}
	retryWorkloads   = []string{wRetry, wDelayed, wDelayedCross}
	allWorkloads     = append(append(slices.Clone(defaultWorkloads), retryWorkloads...), wIdle)
)

type config struct {
	addr       string
	n          int
	size       int
	batch      int
	goroutines int
	workloads  []string
	sides      []string
	count      int
	timeout    time.Duration
	warmup     bool
	jsonOut    bool
	verbose    bool
	cpuProfile string

	retryN         int
	retryFailEvery int
	retryInterval  time.Duration
	anchorLimit    time.Duration

	delayedRate     int
	delayedDuration time.Duration
	delay           time.Duration
	delayJitter     time.Duration

	idleSubs   int
	idleWindow time.Duration
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 20000, "messages per publish and consume workload")
	fs.IntVar(&c.size, "size", 256, "payload size in bytes")
	fs.IntVar(&c.batch, "batch", 100, "messages per Publish call in the batch workload")
	fs.IntVar(&c.goroutines, "goroutines", 16, "publishing goroutines in the concurrent workload")
	only := fs.String("only", "", "comma-separated workloads to run, out of "+strings.Join(allWorkloads, ",")+" (default: "+strings.Join(defaultWorkloads, ",")+", plus "+strings.Join(retryWorkloads, ",")+" with -retry; "+wIdle+" only when named)")
	retry := fs.Bool("retry", false, "also run the retry and delayed-delivery workloads; the anchor's retry side runs up to -anchor-limit")
	sides := fs.String("sides", "redisstream,redrive", "which sides to run: redisstream, redrive or both (one side is handy for profiling); add autopipeline for a bare auto-pipelining RESP client, without go-redis, in the publish workloads (autopipeline.go)")
	fs.IntVar(&c.count, "count", 1, "runs of each publish and consume workload; the table shows the median")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "time limit of one side of one workload; past it the workload reports a timeout")
	fs.BoolVar(&c.warmup, "warmup", true, "run a short unmeasured warm-up before each workload")
	fs.BoolVar(&c.jsonOut, "json", false, "print machine-readable JSON on stdout instead of the table (progress still goes to stderr)")
	fs.BoolVar(&c.verbose, "v", false, "log the Pub/Subs' own messages (info level) to stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.IntVar(&c.retryN, "retry-n", 2000, "messages in the retry workload")
	fs.IntVar(&c.retryFailEvery, "retry-fail-every", 10, "in the retry workload, every k-th message fails once")
	fs.DurationVar(&c.retryInterval, "retry-interval", time.Second, "initial backoff interval in the retry workload (both sides)")
	fs.DurationVar(&c.anchorLimit, "anchor-limit", 60*time.Second, "time limit of the anchor's retry side; its throughput is computed from what it processed by then")
	fs.IntVar(&c.delayedRate, "delayed-rate", 1000, "delayed messages published per second in the delayed workload")
	fs.DurationVar(&c.delayedDuration, "delayed-duration", 5*time.Second, "how long the delayed workload publishes")
	fs.DurationVar(&c.delay, "delay", time.Second, "delay of each delayed message (delay.For)")
	fs.DurationVar(&c.delayJitter, "delay-jitter", 100*time.Millisecond, "each delay is -delay plus a uniform random offset within ± this")
	fs.IntVar(&c.idleSubs, "idle-subs", 100, "idle subscriptions per side in the idle workload (-only idle)")
	fs.DurationVar(&c.idleWindow, "idle-window", time.Minute, "how long the idle workload counts commands")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	c.addr = redistest.Addr()

	switch {
	case *only != "":
		for _, w := range splitList(*only) {
			if !slices.Contains(allWorkloads, w) {
				return c, fmt.Errorf("-only: unknown workload %q (known: %s)", w, strings.Join(allWorkloads, ","))
			}
			if !slices.Contains(c.workloads, w) {
				c.workloads = append(c.workloads, w)
			}
		}
	case *retry:
		c.workloads = slices.Clone(allWorkloads)
	default:
		c.workloads = slices.Clone(defaultWorkloads)
	}
	for _, s := range splitList(*sides) {
		switch s {
		case "redisstream", "anchor":
			c.sides = append(c.sides, sideAnchor)
		case "redrive":
			c.sides = append(c.sides, sideRedrive)
		case sideAutopipeline:
			c.sides = append(c.sides, sideAutopipeline)
		default:
			return c, fmt.Errorf("-sides: unknown side %q (redisstream, redrive or autopipeline)", s)
		}
	}
	if len(c.sides) == 0 {
		return c, fmt.Errorf("-sides: no side to run")
	}

	positive := map[string]int{"-n": c.n, "-size": c.size, "-batch": c.batch, "-goroutines": c.goroutines, "-count": c.count,
		"-retry-n": c.retryN, "-retry-fail-every": c.retryFailEvery, "-delayed-rate": c.delayedRate, "-idle-subs": c.idleSubs}
	for name, v := range positive {
		if v < 1 {
			return c, fmt.Errorf("%s must be at least 1, got %d", name, v)
		}
	}
	durations := map[string]time.Duration{"-timeout": c.timeout, "-anchor-limit": c.anchorLimit,
		"-delayed-duration": c.delayedDuration, "-delay": c.delay, "-retry-interval": c.retryInterval, "-idle-window": c.idleWindow}
	for name, v := range durations {
		if v <= 0 {
			return c, fmt.Errorf("%s must be positive, got %s", name, v)
		}
	}
	if c.delayJitter < 0 || c.delayJitter >= c.delay {
		return c, fmt.Errorf("-delay-jitter must be in [0, -delay), got %s", c.delayJitter)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func (c config) runs(w string) bool { return slices.Contains(c.workloads, w) }

func main() {
	if len(os.Args) > 1 && os.Args[1] == delayedChildArg {
		os.Exit(runDelayedChild(os.Args[2:]))
	}
	cfg, err := parseFlags(os.Args[1:])
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(run(cfg))
}

func run(cfg config) int {
	started := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	b, err := newBench(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	rep := b.runAll(ctx)
	b.cleanup()
	rep.TotalSeconds = time.Since(started).Seconds()
	rep.Machine.LoadEnd = loadAverage()
	rep.Interrupted = ctx.Err() != nil

	var out io.Writer = os.Stdout
	if cfg.jsonOut {
		if err := writeJSON(out, rep); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	} else {
		writeTable(out, rep)
	}
	if rep.Interrupted {
		return 130
	}
	return 0
}
