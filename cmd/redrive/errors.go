package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/redrive-go/redrive/admin"
)

// flagError words an error of the flag package for this CLI, whose flags
// are written with two dashes: "unknown flag --bogus" rather than "flag
// provided but not defined: -bogus".
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + strings.TrimPrefix(name, "-")
	}
	if errors.Is(err, flag.ErrHelp) {
		return msg
	}
	// "invalid value "x" for flag -retain: …", "flag needs an argument: -limit"
	msg = strings.Replace(msg, "for flag -", "for flag --", 1)
	return strings.Replace(msg, "argument: -", "argument: --", 1)
}

// libraryPrefixes are the prefixes of the library's errors; the CLI prints
// its own "redrive: " once instead.
var libraryPrefixes = []string{"redrive/admin: ", "redrive: "}

// withoutPrefix is err's message without a library prefix, so no line reads
// "redrive: redrive/admin: …".
func withoutPrefix(err error) string {
	msg := err.Error()
	for _, p := range libraryPrefixes {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// summary is the last line of a requeue or purge: what was done (or would
// be) out of what was selected and looked at, and what was not, in plain
// words: "Purged 2 messages of 3 selected from S (5 entries looked at; 1
// skipped)." or "No message in S matched the selection (1 entry looked at)."
func summary(res admin.ChangeResult, verb, done string, n int) string {
	looked := plural(int64(res.Scanned), "entry", "entries") + " looked at"
	var notes []string
	for _, c := range []struct {
		n    int
		what string
	}{{res.Skipped, "skipped"}, {res.Gone, "already gone"}, {res.Failed, "failed"}} {
		if c.n > 0 {
			notes = append(notes, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	detail := looked
	if len(notes) > 0 {
		detail += "; " + strings.Join(notes, ", ")
	}
	switch {
	case res.Matched == 0:
		return fmt.Sprintf("No message in %s matched the selection (%s).", res.Stream, detail)
	case res.DryRun:
		return fmt.Sprintf("Dry run: would %s %s of %d selected from %s (%s); nothing changed.",
			verb, plural(int64(n), "message", "messages"), res.Matched, res.Stream, detail)
	}
	return fmt.Sprintf("%s %s of %d selected from %s (%s).",
		strings.ToUpper(done[:1])+done[1:], plural(int64(n), "message", "messages"), res.Matched, res.Stream, detail)
}

// hintNotPoisoned explains, once, entries skipped for carrying no poison
// metadata.
func (a *app) hintNotPoisoned(outs []admin.Outcome, arg, consequence string) {
	n := 0
	for _, o := range outs {
		if o.Note == admin.NoteNotPoisoned {
			n++
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(a.stdout, "%s skipped: no poison metadata, so %s looks like a live topic rather than a poison topic\n"+
		"(for a topic's own poison stream add --internal); %s.\n\n", plural(int64(n), "entry", "entries"), arg, consequence)
}

// finish turns the end of a requeue or purge into the exit status.
func (a *app) finish(err error, notFound []string, failed int) error {
	if err != nil {
		return err
	}
	if len(notFound) > 0 {
		fmt.Fprintf(a.stderr, "redrive: not found: %s\n", strings.Join(notFound, ", "))
	}
	if failed > 0 {
		fmt.Fprintf(a.stderr, "redrive: %s could not be handled (see their notes)\n", plural(int64(failed), "message", "messages"))
	}
	if len(notFound) > 0 || failed > 0 {
		return errFailed
	}
	return nil
}
