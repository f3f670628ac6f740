package web

import (
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/redrive-go/redrive/admin"
)

// Input bounds: anything larger is refused with 400 rather than sent to
// Redis.
const (
	maxNameLen   = 1024
	maxFilterLen = 256
	// maxSelected bounds the IDs of one "selected" action.
	maxSelected = 1000
)

var entryIDPattern = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// ages are the choices of the poison list's age filter.
var ages = []struct {
	Value string
	Label string
	D     time.Duration
}{
	{"", "any age", 0},
	{"5m", "older than 5 minutes", 5 * time.Minute},
	{"1h", "older than 1 hour", time.Hour},
	{"1d", "older than 1 day", 24 * time.Hour},
	{"7d", "older than 7 days", 7 * 24 * time.Hour},
	{"30d", "older than 30 days", 30 * 24 * time.Hour},
}

// name reads a required topic, stream or group name.
func name(r *http.Request, field string) (string, error) {
	v := r.FormValue(field)
	switch {
	case v == "":
		return "", badRequest("The %q parameter is missing.", field)
	case len(v) > maxNameLen:
		return "", badRequest("The %q parameter is longer than %d bytes.", field, maxNameLen)
	case !utf8.ValidString(v):
		return "", badRequest("The %q parameter is not valid UTF-8.", field)
	}
	return v, nil
}

// optionalText reads a free-text filter.
func optionalText(r *http.Request, field string) (string, error) {
	v := r.FormValue(field)
	if len(v) > maxFilterLen {
		return "", badRequest("The %q filter is longer than %d bytes.", field, maxFilterLen)
	}
	if !utf8.ValidString(v) {
		return "", badRequest("The %q filter is not valid UTF-8.", field)
	}
	return v, nil
}

// entryID reads a stream entry ID; optional ones may be empty.
func entryID(r *http.Request, field string, optional bool) (string, error) {
	v := r.FormValue(field)
	if v == "" && optional {
		return "", nil
	}
	if !entryIDPattern.MatchString(v) {
		return "", badRequest("%q is not a stream entry ID (like 1700000000000-0).", trunc(v, 60))
	}
	return v, nil
}

// poisonFilter is the poison list's filter, as the form and the query
// string carry it.
type poisonFilter struct {
	Reason  string
	Origin  string
	Handler string
	Older   string
}

func (f poisonFilter) selector() admin.Selector {
	sel := admin.Selector{ReasonContains: f.Reason, OriginalTopic: f.Origin}
	for _, a := range ages {
		if a.Value == f.Older {
			sel.OlderThan = a.D
		}
	}
	return sel
}

// IsEmpty reports whether the filter chooses everything.
func (f poisonFilter) IsEmpty() bool { return f == poisonFilter{} }

func readPoisonFilter(r *http.Request) (poisonFilter, error) {
	var f poisonFilter
	var err error
	if f.Reason, err = optionalText(r, "reason"); err != nil {
		return f, err
	}
	if f.Origin, err = optionalText(r, "origin"); err != nil {
		return f, err
	}
	if f.Handler, err = optionalText(r, "handler"); err != nil {
		return f, err
	}
	f.Older = r.FormValue("older")
	for _, a := range ages {
		if a.Value == f.Older {
			return f, nil
		}
	}
	return f, badRequest("%q is not an age filter (use one of the list's choices).", trunc(f.Older, 40))
}
