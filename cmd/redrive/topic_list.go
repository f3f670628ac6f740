package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/humanize"
)

func init() {
	register("topic", &command{name: "list", usage: topicListUsage, run: runTopicList})
}

const topicListUsage = `Usage: redrive topic list [--match GLOB] [--json]

Lists every stream that is a Watermill topic (redrive's own poison and retry
streams are left out), with its length, memory, consumer groups, lag, pending
entries, delayed messages, retries waiting and poisoned messages, and flags
what needs attention: poisoned messages, and groups with work whose consumers
all have been idle for a minute or that have none. It scans with SCAN ...
TYPE stream (every master of a cluster) and reads each topic with a few
pipelined commands.

Flags:
  --match GLOB      only topics whose name matches GLOB (SCAN MATCH syntax)

Examples:
  redrive topic list
  redrive topic list --match 'orders.*'
  redrive topic list --json | jq '.[] | select(.poisoned > 0) | .topic'
` + globalFlags

func runTopicList(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var match string
	fs.StringVar(&match, "match", "", "")
	inv, err := a.start(ctx, fs, args, nil)
	if err != nil {
		return err
	}
	defer inv.close()
	topics, err := inv.adm.ListTopics(ctx, admin.ListTopicsOptions{Match: match})
	if err != nil {
		return err
	}
	if a.json {
		if topics == nil {
			topics = []admin.TopicSummary{}
		}
		return a.printJSON(topics)
	}
	if len(topics) == 0 {
		fmt.Fprintln(a.stdout, "No topics.")
		return nil
	}
	now := time.Now()
	w := a.table()
	row(w, "TOPIC", "LENGTH", "MEMORY", "GROUPS", "LAG", "PENDING", "DELAYED", "RETRIES", "POISONED", "LAST ENTRY", "ATTENTION")
	for i, t := range topics {
		if i == maxRows {
			break
		}
		lag := "?"
		if t.Lag >= 0 {
			lag = fmt.Sprint(t.Lag)
		}
		mem := "-"
		if t.MemoryBytes > 0 {
			mem = humanize.Bytes(t.MemoryBytes)
		}
		row(w, cell(t.Topic, 60), t.Length, mem, t.Groups, lag, t.Pending, t.Delayed, t.RetriesWaiting, t.Poisoned,
			ago(t.LastEntryAt, now), cell(attention(t), 60))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(topics) > maxRows {
		fmt.Fprintf(a.stdout, "\n%d more topics not shown; use --match or --json.\n", len(topics)-maxRows)
	}
	return nil
}

// attention says what about a topic needs a look, or "-".
func attention(t admin.TopicSummary) string {
	var parts []string
	if t.IsPoisonTopic {
		parts = append(parts, "poison topic")
	}
	if t.Poisoned > 0 {
		parts = append(parts, "poisoned messages")
	}
	if len(t.IdleGroups) > 0 {
		parts = append(parts, "not reading: "+strings.Join(t.IdleGroups, ","))
	}
	return strings.Join(parts, "; ")
}
