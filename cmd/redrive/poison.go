package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("poison", &command{name: "list", usage: poisonListUsage, run: runPoisonList})
	register("poison", &command{name: "show", usage: poisonShowUsage, run: runPoisonShow})
	register("poison", &command{name: "requeue", usage: poisonRequeueUsage, run: runPoisonRequeue})
	register("poison", &command{name: "purge", usage: poisonPurgeUsage, run: runPoisonPurge})
}

const selectorHelp = `
Choosing messages (at least one; filters combine, all must match):
  --id ID           a poison entry ID, as "poison list" shows it (repeat, or
                    separate with commas)
  --all             every message (still narrowed by the filters)
  --reason TEXT     messages whose reason contains TEXT, in any case
  --topic TOPIC     messages poisoned from TOPIC
  --older-than AGE  messages poisoned at least AGE ago: 90s, 30m, 12h, 7d
`

const poisonListUsage = `Usage: redrive poison list <poison-topic> [filters] [--limit N] [--after ID]

Lists poisoned messages, oldest first: ID, when poisoned, original topic,
handler or group, attempts, first and last failure, reason and last error.
Payloads are never listed (they can hold personal data): see "poison show".

Flags:
  --internal        the argument is a topic: use its internal poison stream
  --reason TEXT     only messages whose reason contains TEXT, in any case
  --topic TOPIC     only messages poisoned from TOPIC
  --older-than AGE  only messages poisoned at least AGE ago: 90s, 30m, 12h, 7d
  --limit N         at most N messages (default 100)
  --after ID        continue after this entry ID (the previous page's last)

Examples:
  redrive poison list poison
  redrive poison list poison --topic orders --older-than 1h
  redrive poison list orders --internal --json
` + globalFlags

const poisonShowUsage = `Usage: redrive poison show <poison-topic> <id> [--payload]

Shows one poisoned message in full: reason, original topic, handler, group,
attempts, failures, last error, retry history and all metadata. The payload
only with --payload: payloads can hold personal data.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --payload    include the payload (as text, or hex when it is binary)

Examples:
  redrive poison show poison 1717000000000-0
  redrive poison show poison 1717000000000-0 --payload
  redrive poison show orders 1717000000000-0 --internal --json
` + globalFlags

const poisonRequeueUsage = `Usage: redrive poison requeue <poison-topic> SELECT [--dry-run] [--group G | --to-stream]

Sends poisoned messages back to their original topic. When the consumer group
that failed on a message is known, it goes to that group's private retry
stream, so only that group sees it again; otherwise to the topic's stream.
The retry count is reset (the retry history is kept) and the requeue is
recorded in the metadata. Each message moves atomically: it is never in both
places and never in neither (on a Redis Cluster, see the admin package docs).
Only messages present when the command starts are considered.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --dry-run    show what would be requeued, and where, without changing anything
  --group G    send every selected message to group G's retry stream
  --to-stream  send every selected message to its topic's stream (all groups)
` + selectorHelp + `
Examples:
  redrive poison requeue poison --id 1717000000000-0
  redrive poison requeue poison --reason "connection refused" --dry-run
  redrive poison requeue poison --topic orders --older-than 10m
  redrive poison requeue poison --all
` + globalFlags

const poisonPurgeUsage = `Usage: redrive poison purge <poison-topic> SELECT [--dry-run]

Deletes poisoned messages for good. Entries that carry no poison metadata
(ordinary messages: the argument is probably a live topic, not a poison
topic) are skipped unless chosen by --id or --force is given.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --dry-run    show what would be deleted without deleting it
  --force      also delete selected entries that carry no poison metadata
` + selectorHelp + `
Examples:
  redrive poison purge poison --id 1717000000000-0
  redrive poison purge poison --older-than 30d --dry-run
  redrive poison purge poison --reason "permanent error" --topic orders
` + globalFlags

// selectorFlags are the flags that choose poisoned messages.
type selectorFlags struct {
	ids       stringList
	all       bool
	reason    string
	topic     string
	olderThan ageValue
}

func (s *selectorFlags) register(fs *flag.FlagSet, withIDs bool) {
	if withIDs {
		fs.Var(&s.ids, "id", "")
		fs.BoolVar(&s.all, "all", false, "")
	}
	fs.StringVar(&s.reason, "reason", "", "")
	fs.StringVar(&s.topic, "topic", "", "")
	fs.Var(&s.olderThan, "older-than", "")
}

func (s *selectorFlags) selector() admin.Selector {
	return admin.Selector{
		IDs:            s.ids,
		All:            s.all,
		ReasonContains: s.reason,
		OriginalTopic:  s.topic,
		OlderThan:      time.Duration(s.olderThan),
	}
}

// checkSelector refuses a requeue or purge that chose nothing, and a bad ID.
func checkSelector(fs *flag.FlagSet, sel selectorFlags) error {
	name := commandName(fs)
	s := sel.selector()
	if s.IsEmpty() {
		return usagef(name, "%s: choose messages with --id, --all, --reason, --topic or --older-than", name)
	}
	if err := s.Validate(); err != nil {
		return usagef(name, "%s: %s", name, strings.TrimPrefix(err.Error(), "redrive/admin: "))
	}
	return nil
}

// poisonStream turns the <poison-topic> argument into a stream key.
func poisonStream(arg string, internal bool) string {
	if internal {
		return admin.PoisonStreamOf(arg)
	}
	return arg
}

func runPoisonList(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, false)
	internal := fs.Bool("internal", false, "")
	limit := fs.Int("limit", 100, "")
	after := fs.String("after", "", "")
	inv, err := a.start(ctx, fs, args, func() error { return checkLimit(fs, *limit) }, "poison-topic")
	if err != nil {
		return err
	}
	defer inv.close()
	stream := poisonStream(inv.args[0], *internal)
	list, err := inv.adm.ListPoisoned(ctx, stream, admin.ListPoisonedOptions{Filter: sel.selector(), After: *after, Limit: *limit})
	if err != nil {
		return err
	}
	if !list.Exists {
		return fmt.Errorf("poison stream %q not found (for a topic's own poison stream add --internal)", list.Stream)
	}
	if a.json {
		return a.printJSON(list)
	}
	if len(list.Messages) == 0 {
		fmt.Fprintf(a.stdout, "No poisoned messages found in %s (%s in all).\n", list.Stream, plural(list.Total, "entry", "entries"))
		return nil
	}
	if list.Unpoisoned == len(list.Messages) {
		fmt.Fprintf(a.stdout, "%s does not look like a poison topic: none of these %s carries poison metadata (%s).\n"+
			"For a topic's own poison stream add --internal.\n\n", list.Stream, plural(int64(len(list.Messages)), "entry", "entries"), "reason_poisoned, topic_poisoned")
	}
	now := time.Now()
	w := a.table()
	row(w, "ID", "POISONED", "TOPIC", "HANDLER/GROUP", "ATTEMPTS", "FIRST FAILURE", "LAST FAILURE", "REASON", "LAST ERROR")
	for _, m := range list.Messages {
		who := m.Handler
		if who == "" {
			who = m.ConsumerGroup
		}
		reason := m.Reason
		if m.DecodeError != "" {
			reason = "undecodable poison entry: " + m.DecodeError
		}
		row(w, m.ID, ago(m.PoisonedAt, now), cell(m.OriginalTopic, 30), cell(who, 24), m.Attempts,
			ago(m.FirstFailedAt, now), ago(m.LastFailedAt, now), cell(reason, 40), cell(m.LastError, 60))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "\n%d shown; %s in %s.\n", len(list.Messages), plural(list.Total, "entry", "entries"), list.Stream)
	if list.Next != "" {
		fmt.Fprintf(a.stdout, "More: redrive poison list %s --after %s\n", inv.args[0], list.Next)
	}
	return nil
}

func runPoisonShow(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	internal := fs.Bool("internal", false, "")
	payload := fs.Bool("payload", false, "")
	inv, err := a.start(ctx, fs, args, nil, "poison-topic", "id")
	if err != nil {
		return err
	}
	defer inv.close()
	m, err := inv.adm.ShowPoisoned(ctx, poisonStream(inv.args[0], *internal), inv.args[1], admin.ShowOptions{Payload: *payload})
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(m)
	}
	now := time.Now()
	w := a.table()
	row(w, "ID:", m.ID)
	row(w, "Poisoned:", stamp(m.PoisonedAt, now))
	row(w, "UUID:", orDash(m.UUID))
	if m.DecodeError != "" {
		row(w, "Decode error:", m.DecodeError)
	}
	row(w, "Reason:", orDash(m.Reason))
	row(w, "Original topic:", orDash(m.OriginalTopic))
	row(w, "Handler:", orDash(m.Handler))
	row(w, "Subscriber:", orDash(m.Subscriber))
	row(w, "Consumer group:", orDash(m.ConsumerGroup))
	if m.SourceStream != "" {
		row(w, "Read from:", m.SourceStream+" entry "+m.SourceID)
	}
	row(w, "Attempts:", m.Attempts)
	row(w, "First failure:", stamp(m.FirstFailedAt, now))
	row(w, "Last failure:", stamp(m.LastFailedAt, now))
	row(w, "Last error:", orDash(cell(m.LastError, 500)))
	row(w, "Requeued before:", fmt.Sprintf("%d times", m.RequeueCount))
	if m.Undecodable {
		row(w, "Undecodable:", "yes: the original entry's fields are kept and a requeue writes them back unchanged")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(m.History) > 0 {
		fmt.Fprintln(a.stdout, "\nRetry history:")
		w = a.table()
		row(w, "  #", "FAILED AT", "DELAY", "ERROR")
		for _, h := range m.History {
			delay := "-"
			if h.Delay > 0 {
				delay = h.Delay.String()
			}
			row(w, "  "+strconv.Itoa(h.Number), h.FailedAt.UTC().Format(time.RFC3339Nano), delay, cell(h.Error, 80))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(m.Metadata) > 0 {
		fmt.Fprintln(a.stdout, "\nMetadata:")
		keys := slices.Sorted(maps.Keys(m.Metadata))
		w = a.table()
		for _, k := range keys {
			row(w, "  "+k, cell(m.Metadata[k], 200))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if !*payload {
		fmt.Fprintf(a.stdout, "\nPayload: %d bytes, not shown (add --payload; it may hold personal data).\n", m.PayloadSize)
		return nil
	}
	fmt.Fprintf(a.stdout, "\nPayload (%d bytes):\n%s", len(m.Payload), showBytes(m.Payload))
	if len(m.RawFields) > 0 {
		fmt.Fprintln(a.stdout, "\nOriginal fields of the undecodable entry:")
		keys := slices.Sorted(maps.Keys(m.RawFields))
		for _, k := range keys {
			fmt.Fprintf(a.stdout, "  %s (%d bytes):\n%s", k, len(m.RawFields[k]), showBytes([]byte(m.RawFields[k])))
		}
	}
	return nil
}

func runPoisonRequeue(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, true)
	internal := fs.Bool("internal", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	group := fs.String("group", "", "")
	toStream := fs.Bool("to-stream", false, "")
	check := func() error {
		if err := checkSelector(fs, sel); err != nil {
			return err
		}
		if *group != "" && *toStream {
			return usagef("poison requeue", "give --group or --to-stream, not both")
		}
		return nil
	}
	inv, err := a.start(ctx, fs, args, check, "poison-topic")
	if err != nil {
		return err
	}
	defer inv.close()
	bar := a.progress("requeued")
	res, err := inv.adm.RequeuePoisoned(ctx, poisonStream(inv.args[0], *internal), sel.selector(), admin.RequeueOptions{
		DryRun:   *dryRun,
		Group:    *group,
		ToStream: *toStream,
		Progress: bar.update,
	})
	bar.done()
	if a.json {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	} else {
		a.printRequeue(res)
	}
	return a.finish(err, res.NotFound, res.Failed)
}

func (a *app) printRequeue(res admin.RequeueResult) {
	a.printChange(res.ChangeResult, res.Requeued, "requeue", admin.StatusRequeued, true, res.Stream,
		"they cannot be requeued: their topic is unknown")
	// Where they went, by topic and group.
	dest := map[string]int{}
	for _, o := range res.Messages {
		if o.Status == admin.StatusRequeued || o.Status == admin.StatusWouldRequeue {
			dest[destination(o)]++
		}
	}
	keys := make([]string, 0, len(dest))
	for k := range dest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(a.stdout, "  %d → %s\n", dest[k], k)
	}
}

func destination(o admin.Outcome) string {
	if o.Group == "" {
		return o.OriginalTopic + " (topic stream, every group)"
	}
	return o.OriginalTopic + " group " + o.Group
}

// printChange prints what a requeue or purge did (verb, ending in status
// done for each of n messages): the outcomes worth a look (each of a dry
// run, else those not done), why entries without poison metadata were
// skipped in arg and with what consequence, and the totals.
func (a *app) printChange(res admin.ChangeResult, n int, verb, done string, withTarget bool, arg, consequence string) {
	var rows []admin.Outcome
	for _, o := range res.Messages {
		if res.DryRun || o.Status != done {
			rows = append(rows, o)
		}
	}
	a.printOutcomes(rows, withTarget)
	a.hintNotPoisoned(res.Messages, arg, consequence)
	fmt.Fprintln(a.stdout, summary(res, verb, done, n))
}

// printOutcomes prints a table of outcomes, capped at maxRows.
func (a *app) printOutcomes(rows []admin.Outcome, withTarget bool) {
	if len(rows) == 0 {
		return
	}
	w := a.table()
	if withTarget {
		row(w, "ID", "UUID", "STATUS", "TOPIC", "TO", "REASON", "NOTE")
	} else {
		row(w, "ID", "UUID", "STATUS", "TOPIC", "REASON", "NOTE")
	}
	for i, o := range rows {
		if i == maxRows {
			break
		}
		if withTarget {
			to := "-"
			switch {
			case o.Target == "":
			case o.Group == "":
				to = "all groups"
			default:
				to = "group " + o.Group
			}
			row(w, o.ID, orDash(o.UUID), o.Status, cell(o.OriginalTopic, 30), cell(to, 30), cell(o.Reason, 40), cell(o.Note, 80))
		} else {
			row(w, o.ID, orDash(o.UUID), o.Status, cell(o.OriginalTopic, 30), cell(o.Reason, 40), cell(o.Note, 80))
		}
	}
	_ = w.Flush()
	if len(rows) > maxRows {
		fmt.Fprintf(a.stdout, "… and %d more (--json lists them all)\n", len(rows)-maxRows)
	}
	fmt.Fprintln(a.stdout)
}

func runPoisonPurge(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, true)
	internal := fs.Bool("internal", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	force := fs.Bool("force", false, "")
	inv, err := a.start(ctx, fs, args, func() error { return checkSelector(fs, sel) }, "poison-topic")
	if err != nil {
		return err
	}
	defer inv.close()
	bar := a.progress("purged")
	res, err := inv.adm.PurgePoisoned(ctx, poisonStream(inv.args[0], *internal), sel.selector(), admin.PurgeOptions{DryRun: *dryRun, Force: *force, Progress: bar.update})
	bar.done()
	if a.json {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	} else {
		a.printChange(res.ChangeResult, res.Purged, "purge", admin.StatusPurged, false, inv.args[0], "--force deletes them anyway")
	}
	return a.finish(err, res.NotFound, res.Failed)
}
