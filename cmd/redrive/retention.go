package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("topic", &command{name: "trim", usage: topicTrimUsage, run: runTopicTrim})
}

const topicTrimUsage = `Usage: redrive topic trim <topic> [--retain AGE] [--dry-run]

Removes from a topic's stream the entries that every consumer group has read
and acknowledged and that are older than the retention window, as redrive
subscribers do every TrimInterval, and shows which groups hold older entries
back. An entry some group has not read, or has read and not acked, is never
removed; a stream without consumer groups is never trimmed. Use it for topics
whose consumers are not redrive subscribers, or to free memory at once.

Flags:
  --retain AGE  keep entries younger than AGE: 90s, 30m, 12h, 7d; 0 keeps none
                (default 10m, the subscribers' default RetainAcked)
  --dry-run     show what would be removed and who holds the rest back,
                without removing anything

Examples:
  redrive topic trim orders --dry-run
  redrive topic trim orders --retain 0
  redrive topic trim orders --json
` + globalFlags

// keeping says what the retention window keeps: "keeping the last 10m", or
// "keeping nothing every group finished with" for --retain 0.
func keeping(v retainValue) string {
	if v.d == 0 {
		return "keeping nothing every group finished with"
	}
	return "keeping the last " + short(v.d)
}

func runTopicTrim(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	retain := retainValue{d: redrive.DefaultRetainAcked}
	fs.Var(&retain, "retain", "")
	dryRun := fs.Bool("dry-run", false, "")
	inv, err := a.start(ctx, fs, args, nil, "topic")
	if err != nil {
		return err
	}
	defer inv.close()
	report, err := inv.adm.TrimTopic(ctx, inv.args[0], admin.TrimOptions{RetainAcked: retain.window(), DryRun: *dryRun})
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) {
			return fmt.Errorf("topic %q not found: its stream does not exist", inv.args[0])
		}
		return err
	}
	if a.json {
		return a.printJSON(report)
	}
	now := time.Now()
	switch {
	case report.TrimBefore == "":
		fmt.Fprintf(a.stdout, "%s has no consumer group: a stream without groups is never trimmed (%s).\n",
			report.Topic, plural(report.Length, "entry", "entries"))
		return nil
	case report.DryRun:
		fmt.Fprintf(a.stdout, "Dry run: would trim %s from %s (%s); nothing removed.\n",
			plural(report.WouldTrim, "entry", "entries"), report.Topic, keeping(retain))
	default:
		fmt.Fprintf(a.stdout, "Trimmed %s from %s (%s); %s left.\n",
			plural(report.Trimmed, "entry", "entries"), report.Topic, keeping(retain), plural(report.Length, "entry", "entries"))
	}
	held := report.HoldingBack()
	if len(held) == 0 {
		fmt.Fprintln(a.stdout, "No consumer group holds entries older than the retention window back.")
		return nil
	}
	fmt.Fprintln(a.stdout, "\nConsumer groups holding older entries back (they stay until the group reads and acks them, or it is deleted):")
	w := a.table()
	row(w, "GROUP", "HOLDS BACK", "PENDING", "UNREAD", "OLDEST HELD", "NEEDS FROM")
	for _, g := range held {
		row(w, g.Group, g.Retained, g.Pending, unreadCell(g), ago(g.HeldSince, now), g.NeededFrom)
	}
	return w.Flush()
}

// unreadCell shows a group's unread count: "?" when unknown, "≥n" when
// counting stopped.
func unreadCell(g redrive.GroupRetention) string {
	switch {
	case g.Unread < 0:
		return "?"
	case g.UnreadAtLeast:
		return "≥" + strconv.FormatInt(g.Unread, 10)
	}
	return strconv.FormatInt(g.Unread, 10)
}

// plural writes n with the singular or plural noun: "1 entry", "2 entries".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

// holdsBackCell shows what a group holds back in topic info: "-", or how
// many entries and since when.
func holdsBackCell(r redrive.GroupRetention, now time.Time) string {
	if !r.HoldsBack {
		return "-"
	}
	return fmt.Sprintf("%d since %s", r.Retained, ago(r.HeldSince, now))
}
