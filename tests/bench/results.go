package main

import (
	"fmt"
	"slices"
	"time"
)

// report is everything a run measured; -json prints it as is.
type report struct {
	Machine      machine           `json:"machine"`
	RunID        string            `json:"run_id"`
	Settings     settings          `json:"settings"`
	Workloads    []workloadReport  `json:"workloads"`
	Commands     *commandsReport   `json:"commands_per_consumed_message,omitempty"`
	Retry        *retryReport      `json:"retry,omitempty"`
	Delayed      *delayedReport    `json:"delayed,omitempty"`
	DelayedCross *delayedReport    `json:"delayed_cross_process,omitempty"`
	Idle         *idleReport       `json:"idle,omitempty"`
	TotalSeconds float64           `json:"total_seconds"`
	Interrupted  bool              `json:"interrupted,omitempty"`
	Notes        map[string]string `json:"notes,omitempty"`
}

type settings struct {
	Messages        int      `json:"messages"`
	PayloadBytes    int      `json:"payload_bytes"`
	BatchSize       int      `json:"batch_size"`
	Goroutines      int      `json:"goroutines"`
	Count           int      `json:"count"`
	Warmup          bool     `json:"warmup"`
	TimeoutSeconds  float64  `json:"timeout_seconds"`
	Workloads       []string `json:"workloads"`
	Sides           []string `json:"sides"`
	AnchorLimitSecs float64  `json:"anchor_retry_limit_seconds"`
}

// target is one goal from the issues, checked against a measured value.
type target struct {
	AtLeast *float64 `json:"at_least,omitempty"`
	AtMost  *float64 `json:"at_most,omitempty"`
	Unit    string   `json:"unit"`
	Value   *float64 `json:"value,omitempty"`
	Verdict string   `json:"verdict"` // PASS, MISS or n/a
}

func atLeast(v float64, unit string) target { return target{AtLeast: &v, Unit: unit, Verdict: "n/a"} }
func atMost(v float64, unit string) target  { return target{AtMost: &v, Unit: unit, Verdict: "n/a"} }

// check sets the verdict for value v; ok false (not measured) leaves n/a.
func (t *target) check(v float64, ok bool) {
	if !ok {
		t.Value, t.Verdict = nil, "n/a"
		return
	}
	t.Value = &v
	pass := (t.AtLeast == nil || v >= *t.AtLeast) && (t.AtMost == nil || v <= *t.AtMost)
	t.Verdict = map[bool]string{true: "PASS", false: "MISS"}[pass]
}

func (t target) String() string {
	switch {
	case t.AtLeast != nil:
		return "≥ " + trimFloat(*t.AtLeast) + t.Unit
	case t.AtMost != nil:
		return "≤ " + trimFloat(*t.AtMost) + t.Unit
	}
	return ""
}

// sideRun is one measured run of one side.
type sideRun struct {
	Messages int     `json:"messages"`
	Done     int     `json:"done"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"msgs_per_s"`
	// ProcessCPUPerMsgUs is this process's CPU time (user+sys) per message
	// over the timed section; ServerCPUPerMsgUs the Redis server's
	// (server-wide: other clients add to it).
	ProcessCPUPerMsgUs float64 `json:"process_cpu_us_per_msg"`
	ServerCPUPerMsgUs  float64 `json:"server_cpu_us_per_msg"`
	// StreamBytesPerMsg is the stream's MEMORY USAGE (every node counted)
	// over its entries, after a publish workload.
	StreamBytesPerMsg float64 `json:"stream_bytes_per_msg,omitempty"`
	TimedOut          bool    `json:"timed_out,omitempty"`
	Error             string  `json:"error,omitempty"`
	Note              string  `json:"note,omitempty"`
}

func newSideRun(n, done int, d time.Duration) sideRun {
	r := sideRun{Messages: n, Done: done, Seconds: d.Seconds()}
	if d > 0 {
		r.Rate = float64(done) / d.Seconds()
	}
	return r
}

func (r sideRun) ok() bool { return !r.TimedOut && r.Error == "" }

func (r sideRun) summary() string {
	s := fmt.Sprintf("%s msgs in %.3f s = %s msg/s; CPU per msg %.1f µs here, %.1f µs in Redis",
		groupDigits(int64(r.Done)), r.Seconds, groupDigits(int64(r.Rate+0.5)), r.ProcessCPUPerMsgUs, r.ServerCPUPerMsgUs)
	if r.TimedOut {
		s = fmt.Sprintf("TIMEOUT after %s of %s msgs (%.1f s)", groupDigits(int64(r.Done)), groupDigits(int64(r.Messages)), r.Seconds)
	}
	if r.Error != "" {
		s += "; ERROR: " + r.Error
	}
	if r.Note != "" {
		s += "; " + r.Note
	}
	return s
}

// sideSummary is all runs of one side of a workload.
type sideSummary struct {
	Runs []sideRun `json:"runs"`
	// Median is the median msg/s of the runs that completed, and the medians
	// of their CPU times per message.
	Median             float64 `json:"median_msgs_per_s"`
	MedianProcessCPUUs float64 `json:"median_process_cpu_us_per_msg"`
	MedianServerCPUUs  float64 `json:"median_server_cpu_us_per_msg"`
	// MedianStreamBytes is the median stream memory per entry of publish runs.
	MedianStreamBytes float64 `json:"median_stream_bytes_per_msg,omitempty"`
	// Failed is set when a run timed out or failed.
	Failed bool `json:"failed,omitempty"`
}

type workloadReport struct {
	Name     string                  `json:"name"`
	Title    string                  `json:"title"`
	Messages int                     `json:"messages"`
	Sides    map[string]*sideSummary `json:"sides"`
	// Ratio is redrive's median msg/s over the anchor's.
	Ratio  float64 `json:"ratio,omitempty"`
	Target target  `json:"target"`
	// LimitFraction is redrive's median msg/s over the Router limit's (the
	// consume workload only), and LimitFractions the same per run.
	LimitFraction  float64   `json:"router_limit_fraction,omitempty"`
	LimitFractions []float64 `json:"router_limit_fractions,omitempty"`
	LimitTarget    *target   `json:"router_limit_target,omitempty"`
}

var workloadTargets = map[string]float64{wSequential: 1, wBatch: 8, wConcurrent: 2, wConsume: 8}

// routerLimitTarget is the least share of the Router's own limit redrive's
// consume rate must reach.
const routerLimitTarget = 0.5

func newWorkloadReport(w string, cfg config) workloadReport {
	titles := map[string]string{
		wSequential: "publish: sequential, 1 msg per call",
		wBatch:      fmt.Sprintf("publish: %d-msg batches", cfg.batch),
		wConcurrent: fmt.Sprintf("publish: %d goroutines, 1 msg per call", cfg.goroutines),
		wConsume:    "consume: Router, no-op handler, group",
	}
	return workloadReport{
		Name:     w,
		Title:    titles[w],
		Messages: cfg.n,
		Sides:    map[string]*sideSummary{},
		Target:   atLeast(workloadTargets[w], "×"),
	}
}

func (w *workloadReport) add(side string, r sideRun) {
	if w.Sides[side] == nil {
		w.Sides[side] = &sideSummary{}
	}
	w.Sides[side].Runs = append(w.Sides[side].Runs, r)
}

func (w *workloadReport) finish() workloadReport {
	for _, s := range w.Sides {
		var rates, processCPU, serverCPU, streamBytes []float64
		for _, r := range s.Runs {
			if r.ok() {
				rates = append(rates, r.Rate)
				processCPU = append(processCPU, r.ProcessCPUPerMsgUs)
				serverCPU = append(serverCPU, r.ServerCPUPerMsgUs)
				streamBytes = append(streamBytes, r.StreamBytesPerMsg)
			} else {
				s.Failed = true
			}
		}
		s.Median = median(rates)
		s.MedianProcessCPUUs = median(processCPU)
		s.MedianServerCPUUs = median(serverCPU)
		s.MedianStreamBytes = median(streamBytes)
	}
	a, r := w.Sides[sideAnchor], w.Sides[sideRedrive]
	ok := a != nil && r != nil && !a.Failed && !r.Failed && a.Median > 0
	if ok {
		w.Ratio = r.Median / a.Median
	}
	w.Target.check(w.Ratio, ok)
	if l := w.Sides[sideRouterLimit]; l != nil && r != nil {
		t := atLeast(routerLimitTarget, " of the limit")
		for i, run := range r.Runs {
			if i < len(l.Runs) && run.ok() && l.Runs[i].ok() && l.Runs[i].Rate > 0 {
				w.LimitFractions = append(w.LimitFractions, run.Rate/l.Runs[i].Rate)
			}
		}
		limitOK := !l.Failed && !r.Failed && l.Median > 0
		if limitOK {
			w.LimitFraction = r.Median / l.Median
		}
		t.check(w.LimitFraction, limitOK)
		w.LimitTarget = &t
	}
	return *w
}

// sideCommands is the Redis commands of one measured consume run.
type sideCommands struct {
	Consumed int `json:"consumed"`
	// WindowSeconds is how long the counts ran: router start to router
	// closed, plus one INFO round trip.
	WindowSeconds float64 `json:"window_seconds"`
	// NoisePerSec is the commands per second other clients of the server sent
	// in an idle window just before; NoisePerSec*WindowSeconds of the server
	// delta are expected not to be ours.
	NoisePerSec float64 `json:"other_clients_cmds_per_s"`

	// Server is the INFO commandstats delta: every client of the server, and
	// commands run inside Lua scripts counted one by one.
	ServerTotal     int64     `json:"server_total"`
	ServerPerMsg    float64   `json:"server_per_msg"`
	ServerByCommand cmdCounts `json:"server_by_command"`
	// Client is what this side's go-redis client sent (a script counts once).
	ClientTotal     int64     `json:"client_total"`
	ClientPerMsg    float64   `json:"client_per_msg"`
	ClientByCommand cmdCounts `json:"client_by_command"`

	Error string `json:"error,omitempty"`
}

func (c *sideCommands) setServer(d cmdCounts) {
	c.ServerByCommand, c.ServerTotal = d, d.total()
	c.ServerPerMsg = float64(c.ServerTotal) / float64(c.Consumed)
}

func (c *sideCommands) setClient(d cmdCounts) {
	c.ClientByCommand, c.ClientTotal = d, d.total()
	c.ClientPerMsg = float64(c.ClientTotal) / float64(c.Consumed)
}

func (c *sideCommands) summary() string {
	if c.Error != "" {
		return "commands: ERROR: " + c.Error
	}
	return fmt.Sprintf("commands: server Δ %s (%.4f/msg: %s); sent by this side %s (%.4f/msg: %s); other clients ~%.0f cmds/s",
		groupDigits(c.ServerTotal), c.ServerPerMsg, c.ServerByCommand.top(6),
		groupDigits(c.ClientTotal), c.ClientPerMsg, c.ClientByCommand.top(6), c.NoisePerSec)
}

type commandsSide struct {
	Runs []*sideCommands `json:"runs"`
	// Median is the run with the median server count per message.
	Median *sideCommands `json:"median"`
}

type commandsReport struct {
	// Target applies to redrive's server-side count per consumed message.
	Target target                   `json:"target"`
	Sides  map[string]*commandsSide `json:"sides"`
}

func newCommandsReport(cfg config) *commandsReport {
	return &commandsReport{Target: atMost(0.05, ""), Sides: map[string]*commandsSide{}}
}

func (c *commandsReport) add(side string, r *sideCommands) {
	if r == nil || r.Error != "" {
		return
	}
	if c.Sides[side] == nil {
		c.Sides[side] = &commandsSide{}
	}
	c.Sides[side].Runs = append(c.Sides[side].Runs, r)
}

func (c *commandsReport) finish() *commandsReport {
	for _, s := range c.Sides {
		runs := slices.Clone(s.Runs)
		slices.SortFunc(runs, func(a, b *sideCommands) int {
			switch {
			case a.ServerPerMsg < b.ServerPerMsg:
				return -1
			case a.ServerPerMsg > b.ServerPerMsg:
				return 1
			}
			return 0
		})
		s.Median = runs[(len(runs)-1)/2]
	}
	r := c.Sides[sideRedrive]
	if r != nil {
		c.Target.check(r.Median.ServerPerMsg, true)
	}
	return c
}

// retrySide is one side of the retry workload.
type retrySide struct {
	Messages int `json:"messages"`
	// Processed is how many distinct messages the handler finished.
	Processed int `json:"processed"`
	// PlannedFailures is how many first attempts failed on purpose.
	PlannedFailures int64 `json:"planned_failures"`
	// Duplicates counts successes of a message already processed.
	Duplicates int64   `json:"duplicates"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"msgs_per_s"`
	// Capped is set when the side was stopped at its time limit before the
	// end; Rate is then Processed over the limit.
	Capped   bool    `json:"capped,omitempty"`
	LimitSec float64 `json:"limit_seconds"`
	Poisoned int64   `json:"poisoned,omitempty"`
	Error    string  `json:"error,omitempty"`
	Note     string  `json:"note,omitempty"`
}

type retryReport struct {
	Messages        int                   `json:"messages"`
	FailEvery       int                   `json:"fail_every"`
	Interval        string                `json:"initial_interval"`
	Sides           map[string]*retrySide `json:"sides"`
	Ratio           float64               `json:"throughput_ratio,omitempty"`
	TimeTarget      target                `json:"redrive_time_target"`
	ThroughputRatio target                `json:"throughput_ratio_target"`
}

// delayedReport is the delayed-delivery lateness workload (redrive only).
type delayedReport struct {
	// CrossProcess is set when another process published.
	CrossProcess  bool    `json:"cross_process"`
	Messages      int     `json:"messages"`
	Received      int     `json:"received"`
	Duplicates    int     `json:"duplicates"`
	PublishRate   float64 `json:"publish_rate_msgs_per_s"`
	Delay         string  `json:"delay"`
	Jitter        string  `json:"delay_jitter"`
	P50Ms         float64 `json:"lateness_p50_ms"`
	P99Ms         float64 `json:"lateness_p99_ms"`
	MaxMs         float64 `json:"lateness_max_ms"`
	MinMs         float64 `json:"lateness_min_ms"`
	Early         int     `json:"early"`
	MaxEarlyMs    float64 `json:"max_early_ms,omitempty"`
	TimedOut      bool    `json:"timed_out,omitempty"`
	Error         string  `json:"error,omitempty"`
	P99Target     target  `json:"p99_target"`
	NoEarlyTarget target  `json:"early_target"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
