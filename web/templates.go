package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/humanize"
)

// pageNames are the templates in templates/, each drawn inside layout.html.
var pageNames = []string{"error", "overview", "topic", "charts", "delayed", "poison", "message", "preview", "job"}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("redrive/web: parse layout: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("redrive/web: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

var templateFuncs = template.FuncMap{
	"ago":     ago,
	"until":   until,
	"dur":     humanize.Duration,
	"bytes":   humanize.Bytes,
	"num":     num,
	"stamp":   stamp,
	"trunc":   trunc,
	"at":      func(t, now time.Time) timeAt { return timeAt{T: t, Now: now} },
	"int64":   func(n int) int64 { return int64(n) },
	"preview": func(p page, d *previewData) previewArgs { return previewArgs{Page: p, D: d} },
	"delayed": func(p page, set admin.DelayedSet, msgs []admin.DelayedMessage) delayedTable {
		return delayedTable{Page: p, Set: set, Messages: msgs}
	},
	"isText": utf8.Valid,
	"text":   func(b []byte) string { return string(b) },
	"hexdump": func(b []byte) string {
		var sb strings.Builder
		for i, c := range b {
			if i > 0 && i%32 == 0 {
				sb.WriteByte('\n')
			} else if i > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%02x", c)
		}
		return sb.String()
	},
}

// previewArgs is the argument of the "preview-body" template.
type previewArgs struct {
	Page page
	D    *previewData
}

// delayedTable is the argument of the "delayed-table" template.
type delayedTable struct {
	Page     page
	Set      admin.DelayedSet
	Messages []admin.DelayedMessage
}

// timeAt is a time with the page's now, for the "time" and "due"
// templates.
type timeAt struct{ T, Now time.Time }

// ago shows how long before now t was: "3m12s ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + humanize.Duration(-d)
	}
	return humanize.Duration(d) + " ago"
}

// until shows how long after now t is: "in 4s", or "due 2s ago".
func until(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	if d := t.Sub(now); d >= 0 {
		return "in " + humanize.Duration(d)
	}
	return "due " + humanize.Duration(now.Sub(t)) + " ago"
}

// stamp is a time in full, UTC, for a tooltip.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// num writes an integer with thin separators: 1 234 567; -1 (unknown) as —.
func num(n int64) string {
	if n < 0 {
		return "—"
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(c)
	}
	return b.String()
}

// trunc shortens s to n characters on one line.
func trunc(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
