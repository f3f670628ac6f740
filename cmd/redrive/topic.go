package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("topic", &command{name: "info", usage: topicInfoUsage, run: runTopicInfo})
}

const topicInfoUsage = `Usage: redrive topic info <topic> [--poison-topic P]...

Shows what a topic holds: stream length; for each consumer group its pending
entries, lag, oldest pending entry, consumers and private retries (waiting,
pending, delayed, next due); the topic's delayed messages and the next due
time; the entries in the topic's internal poison stream. HOLDS BACK is the
number of entries a group still needs (pending or unread) while the stream
keeps entries older than the retention window for it, and since when: such a
group stopped reading or is far behind (see "redrive group delete").

Flags:
  --poison-topic P  also count the messages poisoned from this topic in poison
                    topic P (reads P whole; repeat for several)
  --retain AGE      the retention window the groups are judged against
                    (default 10m, the subscribers' default RetainAcked)

Examples:
  redrive topic info orders
  redrive topic info orders --poison-topic poison
  redrive topic info orders --json | jq '.groups[] | {name, lag, pending}'
` + globalFlags

func runTopicInfo(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var poisonTopics stringList
	fs.Var(&poisonTopics, "poison-topic", "")
	retain := retainValue{d: redrive.DefaultRetainAcked}
	fs.Var(&retain, "retain", "")
	inv, err := a.start(ctx, fs, args, nil, "topic")
	if err != nil {
		return err
	}
	defer inv.close()
	info, err := inv.adm.TopicInfo(ctx, inv.args[0], admin.TopicInfoOptions{PoisonTopics: poisonTopics, RetainAcked: retain.window()})
	if err != nil {
		return err
	}
	if !info.Exists && info.Delayed.Count == 0 && info.Poisoned == 0 {
		return fmt.Errorf("topic %q not found: no stream, no delayed and no poisoned messages", inv.args[0])
	}
	if a.json {
		return a.printJSON(info)
	}
	now := time.Now()
	w := a.table()
	row(w, "Topic:", info.Topic)
	if info.Exists {
		row(w, "Stream:", fmt.Sprintf("%s, %d entries", info.Stream, info.Length))
	} else {
		row(w, "Stream:", info.Stream+" (does not exist yet)")
	}
	row(w, "Delayed:", delayedLine(info.Delayed, now))
	row(w, "Poisoned:", fmt.Sprintf("%d in %s", info.Poisoned, info.PoisonStream))
	for _, pt := range info.PoisonTopics {
		row(w, "Poisoned:", fmt.Sprintf("%d from this topic in poison topic %s", pt.Count, pt.PoisonTopic))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if len(info.Groups) == 0 {
		fmt.Fprintln(a.stdout, "No consumer groups.")
		return nil
	}
	w = a.table()
	row(w, "GROUP", "PENDING", "LAG", "OLDEST PENDING", "CONSUMERS", "RETRIES DUE", "RETRIES PENDING", "RETRIES DELAYED", "NEXT RETRY", "HOLDS BACK")
	for _, g := range info.Groups {
		lag := "?"
		if g.Lag >= 0 {
			lag = strconv.FormatInt(g.Lag, 10)
		}
		oldest := "-"
		if !g.OldestPendingAt.IsZero() {
			oldest = short(g.OldestPendingAge(now))
		}
		row(w, g.Name, g.Pending, lag, oldest, len(g.Consumers), g.Retry.Length, g.Retry.Pending,
			g.Retry.Delayed.Count, until(g.Retry.Delayed.NextDueAt, now), holdsBackCell(g.Retention, now))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	w = a.table()
	row(w, "GROUP", "CONSUMER", "PENDING", "IDLE")
	for _, g := range info.Groups {
		for _, c := range g.Consumers {
			row(w, g.Name, c.Name, c.Pending, short(c.Idle))
		}
	}
	return w.Flush()
}

func delayedLine(d admin.DelayedSummary, now time.Time) string {
	if d.Count == 0 {
		return "none waiting"
	}
	return fmt.Sprintf("%d waiting, next due %s (%s)", d.Count, until(d.NextDueAt, now), d.NextDueAt.UTC().Format(time.RFC3339))
}
