package web

import (
	"strings"
	"testing"
	"time"
)

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]float64{0: 1, 0.3: 1, 1: 1, 1.2: 2, 2.2: 2.5, 3: 5, 7: 10, 11.25: 20, 240: 250, 260: 500} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

// Rates come from counter differences between samples; a counter that goes
// back (a stream made again) reads as no traffic, not a negative rate.
func TestBuildCharts(t *testing.T) {
	t.Parallel()
	now := time.Now()
	at := func(s int) time.Time { return now.Add(time.Duration(s-20) * time.Second) }
	hist := []sample{
		{at: at(0), added: 100, groups: map[string]groupSample{"a": {read: 100, lag: 0}}},
		{at: at(5), added: 150, groups: map[string]groupSample{"a": {read: 110, lag: 40}, "b": {read: 0, lag: 150}}},
		{at: at(10), added: 10, groups: map[string]groupSample{"a": {read: 5, lag: 5}, "b": {read: 5, lag: -1}}},
		{at: at(15), added: 60, groups: map[string]groupSample{"a": {read: 55, lag: 5}, "b": {read: 5, lag: 55}}},
	}
	charts := buildCharts(hist, now, time.Minute)
	if len(charts) != 3 {
		t.Fatalf("%d charts", len(charts))
	}
	publish, consume, lag := charts[0], charts[1], charts[2]
	if len(publish.Lines) != 1 || publish.Lines[0].Last != "10" || strings.Count(publish.Lines[0].Points, ",") != 3 {
		t.Errorf("publish = %+v", publish.Lines)
	}
	// 50 added in 5 s is the peak: the axis is rounded up to 10 a tick.
	if top := publish.YTicks[len(publish.YTicks)-1].Label; top != "10" {
		t.Errorf("publish axis top = %s, want 10", top)
	}
	if len(consume.Lines) != 2 || consume.Lines[0].Name != "a" || consume.Lines[0].Last != "10" || consume.Lines[1].Last != "0" {
		t.Errorf("consume = %+v", consume.Lines)
	}
	// b's unknown lag (-1) is left out, not drawn as -1.
	if len(lag.Lines) != 2 || strings.Count(lag.Lines[1].Points, ",") != 2 || lag.Lines[1].Last != "55" {
		t.Errorf("lag = %+v", lag.Lines)
	}
	for _, c := range charts {
		for _, l := range c.Lines {
			if strings.Contains(l.Points, "-") {
				t.Errorf("%s: point outside the plot: %s", c.Title, l.Points)
			}
		}
	}
	if empty := buildCharts(hist[:1], now, time.Minute); empty[0].Empty == "" {
		t.Errorf("one sample draws a chart: %+v", empty[0])
	}
}

func TestLagGrowing(t *testing.T) {
	t.Parallel()
	s := &sampler{series: map[string][]sample{}}
	mk := func(lags ...int64) []sample {
		var out []sample
		for _, l := range lags {
			out = append(out, sample{groups: map[string]groupSample{"g": {lag: l}, "h": {lag: 1}}})
		}
		return out
	}
	for name, tc := range map[string]struct {
		lags []int64
		want bool
	}{
		"rising":          {[]int64{0, 1, 5, 9, 20}, true},
		"flat at the end": {[]int64{1, 2, 3, 3}, false},
		"too few":         {[]int64{1, 2, 3}, false},
		"fell":            {[]int64{9, 10, 11, 2}, false},
		"unknown lag":     {[]int64{1, 2, -1, 4}, false},
		"rose then fell":  {[]int64{1, 5, 9, 13, 2}, false},
	} {
		s.series["t"] = mk(tc.lags...)
		if got := s.lagGrowing("t"); got != tc.want {
			t.Errorf("%s: lagGrowing = %v, want %v", name, got, tc.want)
		}
	}
}
