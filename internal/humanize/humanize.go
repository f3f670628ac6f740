// Package humanize formats durations and sizes for people, the same way in
// the CLI and in the web console.
package humanize

import (
	"fmt"
	"strings"
	"time"
)

// Duration shows a duration to about three significant parts: "850ms",
// "4.2s", "3m12s", "2h5m", "3d4h".
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	d = d.Round(time.Second)
	days, hours := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
	minutes, seconds := int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	var parts []string
	add := func(n int64, unit string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", n, unit))
		}
	}
	switch {
	case days > 0:
		add(days, "d")
		add(hours, "h")
	case hours > 0:
		add(hours, "h")
		add(minutes, "m")
	default:
		add(minutes, "m")
		add(seconds, "s")
	}
	return strings.Join(parts, "")
}

// Bytes shows a size in bytes with a binary unit: "512 B", "3.4 KiB",
// "12 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	format := "%.1f %ciB"
	if v >= 10 {
		format = "%.0f %ciB"
	}
	return fmt.Sprintf(format, v, "KMGTP"[exp])
}
