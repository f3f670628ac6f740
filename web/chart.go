package web

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chartWidth   = 420
	chartHeight  = 170
	chartLeft    = 40
	chartRight   = 10
	chartTop     = 10
	chartBottom  = 22
	chartYTicks  = 4
	chartXLabels = 4
	// chartMaxLines bounds the lines of one chart (one per group); the
	// busiest groups are kept.
	chartMaxLines = 8
)

// chart is an inline SVG line chart, laid out here and drawn by the
// template, which escapes every name.
type chart struct {
	Title  string
	Unit   string
	Lines  []chartLine
	YTicks []chartTick
	XTicks []chartTick
	// Empty says why nothing is drawn yet.
	Empty                      string
	W, H                       int
	PlotL, PlotR, PlotT, PlotB int
}

type chartLine struct {
	Name   string
	Points string
	// Class picks the line's colour from the stylesheet's palette.
	Class string
	// Last is the latest value, for the legend.
	Last string
}

type chartTick struct {
	Pos   float64
	Label string
}

// series is one line's values over time.
type series struct {
	name   string
	times  []time.Time
	values []float64
}

// buildCharts makes the topic page's three charts from its samples.
func buildCharts(hist []sample, now time.Time, window time.Duration) []chart {
	publish := series{name: "published"}
	consume := map[string]*series{}
	lag := map[string]*series{}
	for i, smp := range hist {
		for g, gs := range smp.groups {
			if lag[g] == nil {
				lag[g] = &series{name: g}
			}
			if gs.lag >= 0 {
				lag[g].times = append(lag[g].times, smp.at)
				lag[g].values = append(lag[g].values, float64(gs.lag))
			}
		}
		if i == 0 {
			continue
		}
		prev := hist[i-1]
		dt := smp.at.Sub(prev.at).Seconds()
		if dt <= 0 {
			continue
		}
		publish.times = append(publish.times, smp.at)
		publish.values = append(publish.values, rate(prev.added, smp.added, dt))
		for g, gs := range smp.groups {
			pg, ok := prev.groups[g]
			if !ok {
				continue
			}
			if consume[g] == nil {
				consume[g] = &series{name: g}
			}
			consume[g].times = append(consume[g].times, smp.at)
			consume[g].values = append(consume[g].values, rate(pg.read, gs.read, dt))
		}
	}
	return []chart{
		layoutChart("Publish rate", "msg/s", []series{publish}, now, window),
		layoutChart("Consume rate per group", "msg/s", sortedSeries(consume), now, window),
		layoutChart("Lag per group", "entries", sortedSeries(lag), now, window),
	}
}

// rate is the per-second rate between two readings of a counter; a counter
// that went back (a stream deleted and made again) counts as no traffic.
func rate(before, after int64, seconds float64) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / seconds
}

// sortedSeries orders lines by name, keeping the chartMaxLines with the
// highest latest values.
func sortedSeries(m map[string]*series) []series {
	out := make([]series, 0, len(m))
	for _, s := range m {
		if len(s.values) > 0 {
			out = append(out, *s)
		}
	}
	if len(out) > chartMaxLines {
		sort.Slice(out, func(i, j int) bool { return out[i].values[len(out[i].values)-1] > out[j].values[len(out[j].values)-1] })
		out = out[:chartMaxLines]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func layoutChart(title, unit string, lines []series, now time.Time, window time.Duration) chart {
	c := chart{
		Title: title, Unit: unit, W: chartWidth, H: chartHeight,
		PlotL: chartLeft, PlotR: chartWidth - chartRight, PlotT: chartTop, PlotB: chartHeight - chartBottom,
	}
	maxV := 0.0
	points := 0
	for _, s := range lines {
		for _, v := range s.values {
			maxV = math.Max(maxV, v)
		}
		points += len(s.values)
	}
	if points < 2 {
		c.Empty = "Collecting samples: the chart fills in over the next minutes."
		return c
	}
	// A round step, and as many ticks as the largest value needs.
	step := niceCeil(maxV / chartYTicks)
	ticks := max(1, int(math.Ceil(maxV/step)))
	top := step * float64(ticks)
	plotW, plotH := float64(c.PlotR-c.PlotL), float64(c.PlotB-c.PlotT)
	start := now.Add(-window)
	for i := 0; i <= ticks; i++ {
		c.YTicks = append(c.YTicks, chartTick{Pos: float64(c.PlotB) - plotH*float64(i)/float64(ticks), Label: formatValue(step * float64(i))})
	}
	for i := 0; i <= chartXLabels; i++ {
		ago := window - window*time.Duration(i)/chartXLabels
		label := "now"
		switch {
		case ago >= time.Minute:
			label = "-" + strconv.Itoa(int(ago.Round(time.Minute)/time.Minute)) + "m"
		case ago > 0:
			label = "-" + strconv.Itoa(int(ago.Round(time.Second)/time.Second)) + "s"
		}
		c.XTicks = append(c.XTicks, chartTick{Pos: float64(c.PlotL) + plotW*float64(i)/chartXLabels, Label: label})
	}
	for i, s := range lines {
		var b strings.Builder
		for j, v := range s.values {
			x := float64(c.PlotL) + plotW*s.times[j].Sub(start).Seconds()/window.Seconds()
			y := float64(c.PlotB) - plotH*v/top
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(math.Max(float64(c.PlotL), x), 'f', 1, 64))
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(y, 'f', 1, 64))
		}
		c.Lines = append(c.Lines, chartLine{
			Name: s.name, Points: b.String(), Class: "c" + strconv.Itoa(i%chartMaxLines),
			Last: formatValue(s.values[len(s.values)-1]),
		})
	}
	return c
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (at least
// 1), so that the axis reads well.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func formatValue(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}
