package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/humanize"
)

// printJSON writes v for scripts.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// table returns an aligned table writer on stdout; Flush prints it.
func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// cell makes free text fit one table cell: one line, no tabs, at most n
// characters.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ago shows how long before now t was, for people: "3m12s ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + short(-d)
	}
	return short(d) + " ago"
}

// until shows how long after now t is: "in 4s", or "overdue 2s".
func until(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(now)
	if d < 0 {
		return "due " + short(-d) + " ago"
	}
	return "in " + short(d)
}

// short shows a duration for people: "850ms", "4.2s", "3m12s", "2h5m", "3d4h".
func short(d time.Duration) string { return humanize.Duration(d) }

// stamp shows a time in full, UTC, with its distance from now.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano) + " (" + ago(t, now) + ")"
}

// progressBar draws a bar on stderr for long operations, only when stderr
// is a terminal.
type progressBar struct {
	w       io.Writer
	enabled bool
	verb    string
	last    time.Time
	drawn   bool
}

func (a *app) progress(verb string) *progressBar {
	return &progressBar{w: a.stderr, enabled: a.stderrIsTerm && !a.json, verb: verb}
}

// update redraws the bar, at most ten times a second.
func (p *progressBar) update(pr admin.Progress) {
	if !p.enabled || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.drawn = true
	const width = 30
	frac := 1.0
	if pr.Total > 0 {
		frac = min(float64(pr.Scanned)/float64(pr.Total), 1)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r[%s] %3.0f%%  %d/%d scanned, %d %s", bar, frac*100, pr.Scanned, pr.Total, pr.Done, p.verb)
	if pr.Skipped > 0 {
		fmt.Fprintf(p.w, ", %d skipped", pr.Skipped)
	}
	fmt.Fprint(p.w, "\x1b[K")
}

// done ends the bar's line so what follows starts on a fresh one.
func (p *progressBar) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// maxRows caps the rows of a table for people; --json has them all.
const maxRows = 200

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// showBytes prints text as it is and anything else as a hex dump, so binary
// payloads cannot upset the terminal.
func showBytes(b []byte) string {
	printable := utf8.Valid(b)
	for _, r := range string(b) {
		if !printable {
			break
		}
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			printable = false
		}
	}
	if printable {
		s := string(b)
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s
	}
	return hex.Dump(b)
}
