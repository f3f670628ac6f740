package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("delayed", &command{name: "list", usage: delayedListUsage, run: runDelayedList})
	register("delayed", &command{name: "run-now", usage: delayedRunNowUsage, run: runDelayedRunNow})
}

const delayedListUsage = `Usage: redrive delayed list <topic> [--group G] [--limit N]

Lists messages waiting for their due time, soonest first: the topic's delayed
messages and each consumer group's delayed retries, with ID, due time, UUID,
attempts and last error.

Flags:
  --group G   only group G's delayed retries
  --limit N   at most N messages per set (default 100)

Examples:
  redrive delayed list orders
  redrive delayed list orders --group billing --json
` + globalFlags

const delayedRunNowUsage = `Usage: redrive delayed run-now <topic> (--id ID | --all) [--group G]

Delivers delayed messages now instead of at their due time: each moves
atomically from its delayed set into its stream (a group's retries into that
group's retry stream), whether or not a subscriber is running.

Flags:
  --id ID     a delayed message ID, as "delayed list" shows it (repeat, or
              separate with commas)
  --all       every message waiting when the command starts
  --group G   only group G's delayed retries (default: the topic's delayed
              messages and every group's retries)

Examples:
  redrive delayed run-now orders --id 01HZX3J5Q8K2M4N6P8R0S2T4V6
  redrive delayed run-now orders --all --group billing
` + globalFlags

// startDelayed is the preamble of the delayed commands: a.start with the
// <topic> argument, then the delayed sets of the topic they work on (only
// the group's with --group). The caller defers close.
func (a *app) startDelayed(ctx context.Context, fs *flag.FlagSet, args []string, check func() error, group *string) (*invocation, []admin.DelayedSet, error) {
	inv, err := a.start(ctx, fs, args, check, "topic")
	if err != nil {
		return nil, nil, err
	}
	topic := inv.args[0]
	if *group != "" {
		return inv, []admin.DelayedSet{admin.GroupDelayedSet(topic, *group)}, nil
	}
	sets, err := inv.adm.DelayedSets(ctx, topic)
	if err != nil {
		inv.close()
		return nil, nil, err
	}
	return inv, sets, nil
}

func setName(s admin.DelayedSet) string {
	if s.Group == "" {
		return "topic"
	}
	return "group " + s.Group
}

func runDelayedList(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	group := fs.String("group", "", "")
	limit := fs.Int("limit", 100, "")
	inv, sets, err := a.startDelayed(ctx, fs, args, func() error { return checkLimit(fs, *limit) }, group)
	if err != nil {
		return err
	}
	defer inv.close()
	lists := make([]admin.DelayedList, 0, len(sets))
	for _, s := range sets {
		l, err := inv.adm.ListDelayed(ctx, s, admin.ListDelayedOptions{Limit: *limit})
		if err != nil {
			return err
		}
		lists = append(lists, l)
	}
	if a.json {
		return a.printJSON(lists)
	}
	now := time.Now()
	var total int64
	shown := 0
	w := a.table()
	row(w, "SET", "ID", "DUE", "UUID", "ATTEMPTS", "LAST ERROR")
	for _, l := range lists {
		total += l.Total
		for _, m := range l.Messages {
			shown++
			id := m.ID
			if m.DecodeError != "" {
				id = "(undecodable)"
			}
			row(w, setName(l.Set), id, until(m.DueAt, now), orDash(m.UUID), m.Attempts, cell(m.LastError, 60))
		}
	}
	if shown == 0 {
		fmt.Fprintf(a.stdout, "No delayed messages for %s.\n", inv.args[0])
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\n%d shown of %d delayed messages.\n", shown, total)
	for _, l := range lists {
		if int64(len(l.Messages)) < l.Total {
			fmt.Fprintf(a.stdout, "  %s: %d of %d shown (--limit)\n", setName(l.Set), len(l.Messages), l.Total)
		}
	}
	return nil
}

// runNowReport is the JSON of delayed run-now.
type runNowReport struct {
	// Moved counts the messages moved from every set.
	Moved int `json:"moved"`
	// NotFound are the IDs asked for that no set held.
	NotFound []string `json:"not_found,omitempty"`
	// Sets is the result for each set.
	Sets []admin.RunNowResult `json:"sets"`
}

func runDelayedRunNow(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var ids stringList
	fs.Var(&ids, "id", "")
	all := fs.Bool("all", false, "")
	group := fs.String("group", "", "")
	check := func() error {
		if *all == (len(ids) > 0) {
			return usagef("delayed run-now", "delayed run-now: give either --id or --all")
		}
		return nil
	}
	inv, sets, err := a.startDelayed(ctx, fs, args, check, group)
	if err != nil {
		return err
	}
	defer inv.close()
	report := runNowReport{Sets: []admin.RunNowResult{}}
	moved := map[string]bool{}
	bar := a.progress("moved")
	var runErr error
	for _, s := range sets {
		res, err := inv.adm.RunDelayedNow(ctx, s, admin.RunNowOptions{IDs: ids, All: *all, Progress: bar.update})
		if err != nil && !errors.Is(err, admin.ErrNotFound) {
			runErr = err
		}
		report.Sets = append(report.Sets, res)
		report.Moved += res.Moved
		for _, m := range res.Messages {
			moved[m.ID] = true
		}
		if runErr != nil {
			break
		}
	}
	bar.done()
	for _, id := range ids {
		if !moved[id] {
			report.NotFound = append(report.NotFound, id)
		}
	}
	if a.json {
		if err := a.printJSON(report); err != nil {
			return err
		}
	} else {
		w := a.table()
		rows := 0
		for _, r := range report.Sets {
			for _, m := range r.Messages {
				if rows == 0 {
					row(w, "SET", "ID", "UUID", "NEW ENTRY", "STREAM")
				}
				if rows < maxRows {
					row(w, setName(r.Set), orDash(m.ID), orDash(m.UUID), m.NewID, r.Set.Stream)
				}
				rows++
			}
		}
		_ = w.Flush()
		if rows > maxRows {
			fmt.Fprintf(a.stdout, "… and %d more (--json lists them all)\n", rows-maxRows)
		}
		if rows > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "Moved %d delayed messages into their streams.\n", report.Moved)
	}
	return a.finish(runErr, report.NotFound, 0)
}
