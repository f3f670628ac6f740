package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func writeJSON(w io.Writer, rep *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the report for people.
func writeTable(w io.Writer, rep *report) {
	m, st := rep.Machine, rep.Settings
	fmt.Fprintf(w, "redrive vs watermill-redisstream v1.4.5: same workloads, one run, one Redis\n")
	fmt.Fprintf(w, "machine   %d CPUs (GOMAXPROCS %d), %s, %s, %s\n", m.NumCPU, m.GOMAXPROCS, m.CPUModel, m.OS, m.GoVersion)
	where := "remote"
	if m.RedisLocal {
		where = "loopback"
	}
	fmt.Fprintf(w, "redis     %s at %s (%s)\n", m.RedisVersion, m.RedisAddr, where)
	fmt.Fprintf(w, "load      %s at the start, %s at the end (1, 5, 15 min; other work on the machine slows both sides)\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "settings  %s msgs per workload, %d B payload, warm-up %s, %d run(s) per side (median shown), %s limit per side, run id %s\n\n",
		groupDigits(int64(st.Messages)), st.PayloadBytes, onOff(st.Warmup), st.Count, time.Duration(st.TimeoutSeconds*float64(time.Second)), rep.RunID)

	if len(rep.Workloads) > 0 || rep.Commands != nil {
		writeThroughput(w, rep)
	}
	if rep.Retry != nil {
		writeRetry(w, rep.Retry, st)
	}
	if rep.Delayed != nil {
		writeDelayed(w, rep.Delayed)
	}
	if rep.DelayedCross != nil {
		writeDelayed(w, rep.DelayedCross)
	}
	if rep.Idle != nil {
		writeIdle(w, rep.Idle)
	}
	if rep.Interrupted {
		fmt.Fprintf(w, "INTERRUPTED: the run was stopped before the end; the numbers above are partial.\n")
	}
	fmt.Fprintf(w, "total run time %.1f s\n", rep.TotalSeconds)
}

func writeThroughput(w io.Writer, rep *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tREDISSTREAM\tREDRIVE\tRATIO\tTARGET\tRESULT")
	var problems []string
	for _, wr := range rep.Workloads {
		ratio := "—"
		if wr.Target.Value != nil {
			ratio = fmt.Sprintf("%.2f×", wr.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wr.Title, rateCell(wr.Sides[sideAnchor]), rateCell(wr.Sides[sideRedrive]),
			ratio, wr.Target, wr.Target.Verdict)
		for _, name := range []string{sideAnchor, sideRedrive, sideAutopipeline} {
			s := wr.Sides[name]
			if s == nil {
				continue
			}
			for i, r := range s.Runs {
				if !r.ok() || r.Note != "" {
					problems = append(problems, fmt.Sprintf("%s, %s, run %d: %s", wr.Title, name, i+1, r.summary()))
				}
			}
		}
	}
	for _, wr := range rep.Workloads {
		if wr.LimitTarget == nil {
			continue
		}
		fraction := "—"
		if wr.LimitTarget.Value != nil {
			fraction = fmt.Sprintf("%.2f", wr.LimitFraction)
		}
		fmt.Fprintf(tw, "  Router's own limit (ready-made msgs)\t\t%s\t%s\t%s\t%s\n",
			rateCell(wr.Sides[sideRouterLimit]), fraction, wr.LimitTarget, wr.LimitTarget.Verdict)
	}
	c := rep.Commands
	if c != nil {
		fmt.Fprintf(tw, "Redis commands per consumed message\t%s\t%s\t\t%s\t%s\n",
			perMsgCell(c, sideAnchor, false), perMsgCell(c, sideRedrive, false), c.Target, c.Target.Verdict)
		fmt.Fprintf(tw, "  (only what the side's client sent)\t%s\t%s\t\t\t\n",
			perMsgCell(c, sideAnchor, true), perMsgCell(c, sideRedrive, true))
	}
	_ = tw.Flush()

	if len(rep.Workloads) > 0 {
		fmt.Fprintln(w, "\nCPU time per message over the timed section, in µs (this process | Redis server, server-wide):")
		tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "WORKLOAD\tREDISSTREAM\tREDRIVE\tPROCESS RATIO\tSERVER RATIO")
		for _, wr := range rep.Workloads {
			a, r := wr.Sides[sideAnchor], wr.Sides[sideRedrive]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", wr.Title, cpuCell(a), cpuCell(r),
				cpuRatio(a, r, func(s *sideSummary) float64 { return s.MedianProcessCPUUs }),
				cpuRatio(a, r, func(s *sideSummary) float64 { return s.MedianServerCPUUs }))
		}
		_ = tw.Flush()
		fmt.Fprintln(w, "(ratios are anchor/redrive: how many times less CPU redrive needs per message)")
	}

	writeStreamMemory(w, rep)
	writeAutopipeline(w, rep)

	if rep.Settings.Count > 1 {
		fmt.Fprintln(w, "\nall runs, msg/s:")
		for _, wr := range rep.Workloads {
			for _, name := range []string{sideAnchor, sideRedrive, sideAutopipeline, sideRouterLimit} {
				if s := wr.Sides[name]; s != nil {
					var rates []string
					for _, r := range s.Runs {
						rates = append(rates, groupDigits(int64(r.Rate+0.5)))
					}
					fmt.Fprintf(w, "  %-40s %-12s %s\n", wr.Title, name, strings.Join(rates, "  "))
				}
			}
			if len(wr.LimitFractions) > 0 {
				var fs []string
				for _, f := range wr.LimitFractions {
					fs = append(fs, fmt.Sprintf("%.2f", f))
				}
				fmt.Fprintf(w, "  %-40s %-12s %s\n", wr.Title, "redrive/limit", strings.Join(fs, "  "))
			}
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w, "\ntimeouts, errors and notes:")
		for _, p := range problems {
			fmt.Fprintln(w, "  "+p)
		}
	}
	if c != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Commands per consumed message: the INFO commandstats delta from just before the router starts until it")
		fmt.Fprintln(w, "has closed (batched acks flushed at close included), divided by the messages consumed. INFO commandstats")
		fmt.Fprintln(w, "is server-wide: it also counts the commands of other clients of this shared server, and each command a")
		fmt.Fprintln(w, "Lua script runs. To size that noise, the server was watched for 300 ms just before each phase with the")
		fmt.Fprintln(w, "benchmark idle. The second line counts only what that side's go-redis client sent (exact, noise-free;")
		fmt.Fprintln(w, "a script call counts once). The target is checked on the server-side count.")
		for _, name := range []string{sideAnchor, sideRedrive} {
			s := c.Sides[name]
			if s == nil {
				continue
			}
			m := s.Median
			fmt.Fprintf(w, "  %-12s server Δ %s in %.2f s (other clients ~%.0f cmds/s idle, ~%.0f expected in the window): %s\n",
				name+":", groupDigits(m.ServerTotal), m.WindowSeconds, m.NoisePerSec, m.NoisePerSec*m.WindowSeconds, m.ServerByCommand.top(8))
			fmt.Fprintf(w, "  %-12s sent %s: %s\n", "", groupDigits(m.ClientTotal), m.ClientByCommand.top(8))
		}
	}
	fmt.Fprintln(w)
}

func rateCell(s *sideSummary) string {
	if s == nil {
		return "—"
	}
	if s.Median == 0 {
		for _, r := range s.Runs {
			if r.TimedOut {
				return "TIMEOUT"
			}
		}
		return "ERROR"
	}
	cell := groupDigits(int64(s.Median+0.5)) + " msg/s"
	if s.Failed {
		cell += " (some runs failed)"
	}
	return cell
}

func cpuCell(s *sideSummary) string {
	if s == nil || s.Median == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f | %.1f", s.MedianProcessCPUUs, s.MedianServerCPUUs)
}

// writeStreamMemory prints the stream memory per entry of the publish
// workloads, where any ran.
func writeStreamMemory(w io.Writer, rep *report) {
	rows := workloadsWhere(rep, func(wr workloadReport) bool {
		return streamBytes(wr.Sides[sideAnchor]) > 0 || streamBytes(wr.Sides[sideRedrive]) > 0
	})
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nStream memory per entry after publishing, in bytes (MEMORY USAGE with every node sampled):")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tREDISSTREAM\tREDRIVE")
	for _, wr := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", wr.Title, bytesCell(wr.Sides[sideAnchor]), bytesCell(wr.Sides[sideRedrive]))
	}
	_ = tw.Flush()
}

// writeAutopipeline compares redrive with the bare auto-pipelining client
// of autopipeline.go, where that side ran.
func writeAutopipeline(w io.Writer, rep *report) {
	rows := workloadsWhere(rep, func(wr workloadReport) bool { return wr.Sides[sideAutopipeline] != nil })
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nredrive against a bare auto-pipelining RESP client (tests/bench/autopipeline.go: one connection, a writer and a reader goroutine, no go-redis), the same entries:")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tAUTOPIPELINE\tREDRIVE\tRATIO\tCPU µs/MSG AUTOPIPELINE\tREDRIVE")
	for _, wr := range rows {
		c, r := wr.Sides[sideAutopipeline], wr.Sides[sideRedrive]
		ratio := "—"
		if c.Median > 0 && r != nil && r.Median > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Median/c.Median)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wr.Title, rateCell(c), rateCell(r), ratio, cpuCell(c), cpuCell(r))
	}
	_ = tw.Flush()
}

func workloadsWhere(rep *report, keep func(workloadReport) bool) []workloadReport {
	var out []workloadReport
	for _, wr := range rep.Workloads {
		if keep(wr) {
			out = append(out, wr)
		}
	}
	return out
}

func streamBytes(s *sideSummary) float64 {
	if s == nil {
		return 0
	}
	return s.MedianStreamBytes
}

func bytesCell(s *sideSummary) string {
	if streamBytes(s) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", s.MedianStreamBytes)
}

func cpuRatio(a, r *sideSummary, f func(*sideSummary) float64) string {
	if a == nil || r == nil || a.Median == 0 || r.Median == 0 || f(r) <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", f(a)/f(r))
}

func perMsgCell(c *commandsReport, side string, client bool) string {
	s := c.Sides[side]
	if s == nil {
		return "—"
	}
	if client {
		return fmt.Sprintf("%.4f", s.Median.ClientPerMsg)
	}
	return fmt.Sprintf("%.4f", s.Median.ServerPerMsg)
}

func writeRetry(w io.Writer, r *retryReport, st settings) {
	fmt.Fprintf(w, "RETRY: %s msgs, every %s fails once (first attempt only), backoff %s, multiplier %d, max %d retries\n",
		groupDigits(int64(r.Messages)), ordinal(r.FailEvery), r.Interval, retryMultiplier, retryMaxRetries)
	fmt.Fprintln(w, "  redrive: Subscriber + Router + redrive middleware.Retry (requeues with a delay and acks; nothing sleeps)")
	fmt.Fprintln(w, "  redisstream: Subscriber + Router + Watermill middleware.Retry (sleeps in the handler; one message in flight)")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  SIDE\tPROCESSED\tTIME\tMSG/S\tDUPLICATES\tNOTE")
	var capped *retrySide
	for _, name := range []string{sideAnchor, sideRedrive} {
		s := r.Sides[name]
		if s == nil {
			continue
		}
		note := ""
		if s.Capped {
			note = fmt.Sprintf("stopped at its %s limit", time.Duration(s.LimitSec*float64(time.Second)))
			if name == sideAnchor {
				capped = s
			}
		}
		if s.Poisoned > 0 {
			note = join(note, fmt.Sprintf("%d poisoned", s.Poisoned))
		}
		if s.Error != "" {
			note = join(note, "ERROR: "+s.Error)
		}
		if s.Note != "" {
			note = join(note, s.Note)
		}
		fmt.Fprintf(tw, "  %s\t%s of %s\t%.2f s\t%s\t%d\t%s\n", name, groupDigits(int64(s.Processed)), groupDigits(int64(s.Messages)),
			s.Seconds, fmtRate(s.Rate), s.Duplicates, note)
	}
	_ = tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	timeVal, ratioVal := "—", "—"
	if v := r.TimeTarget.Value; v != nil {
		timeVal = fmt.Sprintf("%.2f s", *v)
	}
	if r.ThroughputRatio.Value != nil {
		ratioVal = fmt.Sprintf("%.0f×", r.Ratio)
	}
	fmt.Fprintf(tw, "  redrive: time to process all\t%s\ttarget %s\t%s\n", timeVal, r.TimeTarget, r.TimeTarget.Verdict)
	fmt.Fprintf(tw, "  throughput ratio redrive/redisstream\t%s\ttarget %s\t%s\n", ratioVal, r.ThroughputRatio, r.ThroughputRatio.Verdict)
	_ = tw.Flush()
	if capped != nil && capped.Processed > 0 {
		fmt.Fprintf(w, "  The redisstream side was stopped at its time limit (-anchor-limit %s): its throughput is what it processed\n",
			time.Duration(st.AnchorLimitSecs*float64(time.Second)))
		fmt.Fprintf(w, "  in that window (%s msgs / %.1f s); at that rate all %s would take about %.0f s.\n",
			groupDigits(int64(capped.Processed)), capped.Seconds, groupDigits(int64(capped.Messages)), float64(capped.Messages)/capped.Rate)
	}
	fmt.Fprintln(w)
}

func writeDelayed(w io.Writer, d *delayedReport) {
	fmt.Fprintf(w, "DELAYED DELIVERY: %s msgs, delay.Message(msg, delay.For(%s %s)) through redrive's Publisher at %.0f msg/s,\n",
		groupDigits(int64(d.Messages)), d.Delay, d.Jitter, d.PublishRate)
	if d.CrossProcess {
		fmt.Fprintln(w, "  in ANOTHER process (nothing in the subscriber's process hears of the schedule), consumed by a redrive")
		fmt.Fprintln(w, "  Subscriber (group); lateness = arrival − intended due time")
	} else {
		fmt.Fprintln(w, "  consumed by a redrive Subscriber (group) in the same process; lateness = arrival − intended due time")
	}
	fmt.Fprintln(w, "  (taken right after delay.For, before Publish; carried in metadata in nanoseconds)")
	if d.Error != "" {
		fmt.Fprintf(w, "  ERROR: %s\n", d.Error)
	}
	fmt.Fprintf(w, "  received %s of %s, %d duplicates\n", groupDigits(int64(d.Received)), groupDigits(int64(d.Messages)), d.Duplicates)
	fmt.Fprintf(w, "  lateness p50 %.2f ms   p99 %.2f ms   max %.2f ms   min %.2f ms\n", d.P50Ms, d.P99Ms, d.MaxMs, d.MinMs)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "  p99 lateness\t%.2f ms\ttarget %s\t%s\n", d.P99Ms, d.P99Target, d.P99Target.Verdict)
	early := strconv.Itoa(d.Early)
	if d.Early > 0 {
		early += fmt.Sprintf(" (up to %.3f ms early)", d.MaxEarlyMs)
	}
	fmt.Fprintf(tw, "  early messages\t%s\ttarget %s\t%s\n", early, d.NoEarlyTarget, d.NoEarlyTarget.Verdict)
	_ = tw.Flush()
	if d.CrossProcess {
		fmt.Fprintln(w, "  The publisher in the other process wakes the mover through the topic's wake-up channel (Redis Pub/Sub);")
		fmt.Fprintln(w, "  the mover's own poll (DelayedPollInterval, default 60 s) is only a safety net.")
	} else {
		fmt.Fprintln(w, "  The publisher wakes the in-process mover directly (see delayed-xproc for a publisher in another process).")
	}
	fmt.Fprintln(w)
}

// groupDigits formats 1234567 as "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtRate(r float64) string {
	if r < 100 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return groupDigits(int64(r + 0.5))
}

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func ordinal(n int) string {
	switch {
	case n == 1:
		return "message"
	case n%10 == 1 && n%100 != 11:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2 && n%100 != 12:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3 && n%100 != 13:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}
