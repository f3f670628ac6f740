package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("topic", &command{name: "trim", usage: topicTrimUsage, run: runTopicTrim})
	register("group", &command{name: "delete", usage: groupDeleteUsage, run: runGroupDelete})
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

const groupDeleteUsage = `Usage: redrive group delete <topic> <group> [--yes]

Deletes a consumer group of a topic: the group on the topic's stream, and its
private retry stream and delayed retries. Its pending and unread entries are
no longer kept for it (other groups still get them), so the next trim can
remove them. For a group that stopped reading for good (an old deployment, a
service switched off) and holds every entry after its position in Redis.
Nothing deletes a group by itself. Asks for confirmation unless --yes is
given. A subscriber of the group that still runs creates it again.

Flags:
  --yes   do not ask for confirmation

Examples:
  redrive group delete orders old-billing
  redrive group delete orders old-billing --yes --json
` + globalFlags

// retainValue is the --retain flag: an age like --older-than's, where 0
// keeps nothing.
type retainValue struct{ d time.Duration }

// String implements flag.Value.
func (v *retainValue) String() string { return v.d.String() }

// Set implements flag.Value.
func (v *retainValue) Set(s string) error {
	if s == "0" {
		v.d = 0
		return nil
	}
	var age ageValue
	if err := age.Set(s); err != nil {
		return fmt.Errorf("%q is not an age like 0, 90s, 30m, 12h or 7d", s)
	}
	v.d = time.Duration(age)
	return nil
}

// window is the retention to ask the admin for: 0 keeps nothing, which the
// admin spells as the smallest window.
func (v retainValue) window() time.Duration {
	return max(v.d, time.Millisecond)
}

// keeping says what the retention window keeps: "keeping the last 10m", or
// "keeping nothing every group finished with" for --retain 0.
func keeping(v retainValue) string {
	if v.d == 0 {
		return "keeping nothing every group finished with"
	}
	return "keeping the last " + short(v.d)
}

func runTopicTrim(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	retain := retainValue{d: redrive.DefaultRetainAcked}
	fs.Var(&retain, "retain", "")
	dryRun := fs.Bool("dry-run", false, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "topic"); err != nil {
		return err
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	report, err := adm.TrimTopic(ctx, pos[0], admin.TrimOptions{RetainAcked: retain.window(), DryRun: *dryRun})
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) {
			return fmt.Errorf("topic %q not found: its stream does not exist", pos[0])
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

func runGroupDelete(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	yes := fs.Bool("yes", false, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "topic", "group"); err != nil {
		return err
	}
	topic, group := pos[0], pos[1]
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	if !*yes {
		info, err := adm.TopicInfo(ctx, topic, admin.TopicInfoOptions{})
		if err != nil {
			return err
		}
		var found *admin.GroupInfo
		for i := range info.Groups {
			if info.Groups[i].Name == group {
				found = &info.Groups[i]
			}
		}
		if found == nil {
			return fmt.Errorf("consumer group %q of topic %q not found", group, topic)
		}
		lag := "an unknown number of"
		if found.Lag >= 0 {
			lag = strconv.FormatInt(found.Lag, 10)
		}
		fmt.Fprintf(a.stderr, "Delete consumer group %q of topic %q? It has %s, %s unread entries and %s; this group will never process them.\nType the group name to confirm: ",
			group, topic, plural(found.Pending, "pending entry", "pending entries"), lag,
			plural(found.Retry.Length+found.Retry.Delayed.Count, "retry", "retries"))
		in := a.stdin
		if in == nil {
			in = strings.NewReader("")
		}
		answer, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(answer) != group {
			fmt.Fprintln(a.stderr)
			return errors.New("not confirmed: nothing deleted (give --yes to skip the question)")
		}
	}
	res, err := adm.DeleteGroup(ctx, topic, group)
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) {
			return fmt.Errorf("consumer group %q of topic %q not found", group, topic)
		}
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "Deleted consumer group %s of %s (it had %s and %s).\n",
		res.Group, res.Topic, plural(res.Pending, "pending entry", "pending entries"), plural(res.Retries, "retry", "retries"))
	return nil
}

// holdsBackCell shows what a group holds back in topic info: "-", or how
// many entries and since when.
func holdsBackCell(r redrive.GroupRetention, now time.Time) string {
	if !r.HoldsBack {
		return "-"
	}
	return fmt.Sprintf("%d since %s", r.Retained, ago(r.HeldSince, now))
}
