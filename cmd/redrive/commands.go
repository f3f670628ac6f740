package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("topic", &command{name: "info", usage: topicInfoUsage, run: runTopicInfo})
	register("poison", &command{name: "list", usage: poisonListUsage, run: runPoisonList})
	register("poison", &command{name: "show", usage: poisonShowUsage, run: runPoisonShow})
	register("poison", &command{name: "requeue", usage: poisonRequeueUsage, run: runPoisonRequeue})
	register("poison", &command{name: "purge", usage: poisonPurgeUsage, run: runPoisonPurge})
	register("delayed", &command{name: "list", usage: delayedListUsage, run: runDelayedList})
	register("delayed", &command{name: "run-now", usage: delayedRunNowUsage, run: runDelayedRunNow})
}

// maxRows caps the rows of a table for people; --json has them all.
const maxRows = 200

// stringList is a repeatable flag whose values may also be comma-separated.
type stringList []string

// String implements flag.Value.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value: each use adds its comma-separated values.
func (l *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// ageValue is a duration flag that also takes days and weeks: 7d, 2w, 1d12h.
type ageValue time.Duration

var dayUnits = regexp.MustCompile(`(\d+(?:\.\d+)?)([dw])`)

// String implements flag.Value.
func (v *ageValue) String() string { return time.Duration(*v).String() }

// Set implements flag.Value.
func (v *ageValue) Set(s string) error {
	var convErr error
	expanded := dayUnits.ReplaceAllStringFunc(s, func(m string) string {
		parts := dayUnits.FindStringSubmatch(m)
		n, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			convErr = err
			return m
		}
		hours := n * 24
		if parts[2] == "w" {
			hours *= 7
		}
		return strconv.FormatFloat(hours, 'f', -1, 64) + "h"
	})
	d, err := time.ParseDuration(expanded)
	if convErr != nil || err != nil || d <= 0 {
		return fmt.Errorf("%q is not an age like 90s, 30m, 12h or 7d", s)
	}
	*v = ageValue(d)
	return nil
}

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

// oneArg checks that exactly the named positional arguments were given.
func oneArg(fs *flag.FlagSet, pos []string, names ...string) error {
	name := strings.TrimPrefix(fs.Name(), "redrive ")
	if len(pos) < len(names) {
		return usagef(name, "%s: missing <%s>", name, names[len(pos)])
	}
	if len(pos) > len(names) {
		return usagef(name, "%s: unexpected argument %q", name, pos[len(names)])
	}
	for i, p := range pos {
		if p == "" {
			return usagef(name, "%s: <%s> is empty", name, names[i])
		}
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

func runTopicInfo(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	var poisonTopics stringList
	fs.Var(&poisonTopics, "poison-topic", "")
	retain := retainValue{d: redrive.DefaultRetainAcked}
	fs.Var(&retain, "retain", "")
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
	info, err := adm.TopicInfo(ctx, pos[0], admin.TopicInfoOptions{PoisonTopics: poisonTopics, RetainAcked: retain.window()})
	if err != nil {
		return err
	}
	if !info.Exists && info.Delayed.Count == 0 && info.Poisoned == 0 {
		return fmt.Errorf("topic %q not found: no stream, no delayed and no poisoned messages", pos[0])
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

func runPoisonList(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, false)
	internal := fs.Bool("internal", false, "")
	limit := fs.Int("limit", 100, "")
	after := fs.String("after", "", "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "poison-topic"); err != nil {
		return err
	}
	if *limit < 1 {
		return usagef("poison list", "--limit must be at least 1, got %d", *limit)
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	stream := poisonStream(pos[0], *internal)
	list, err := adm.ListPoisoned(ctx, stream, admin.ListPoisonedOptions{Filter: sel.selector(), After: *after, Limit: *limit})
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
		fmt.Fprintf(a.stdout, "More: redrive poison list %s --after %s\n", pos[0], list.Next)
	}
	return nil
}

func runPoisonShow(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	internal := fs.Bool("internal", false, "")
	payload := fs.Bool("payload", false, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "poison-topic", "id"); err != nil {
		return err
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	m, err := adm.ShowPoisoned(ctx, poisonStream(pos[0], *internal), pos[1], admin.ShowOptions{Payload: *payload})
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
		keys := make([]string, 0, len(m.Metadata))
		for k := range m.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
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
		keys := make([]string, 0, len(m.RawFields))
		for k := range m.RawFields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(a.stdout, "  %s (%d bytes):\n%s", k, len(m.RawFields[k]), showBytes([]byte(m.RawFields[k])))
		}
	}
	return nil
}

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

func runPoisonRequeue(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, true)
	internal := fs.Bool("internal", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	group := fs.String("group", "", "")
	toStream := fs.Bool("to-stream", false, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "poison-topic"); err != nil {
		return err
	}
	if err := checkSelector(fs, sel); err != nil {
		return err
	}
	if *group != "" && *toStream {
		return usagef("poison requeue", "give --group or --to-stream, not both")
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	bar := a.progress("requeued")
	res, err := adm.RequeuePoisoned(ctx, poisonStream(pos[0], *internal), sel.selector(), admin.RequeueOptions{
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

// checkSelector refuses a requeue or purge that chose nothing, and a bad ID.
func checkSelector(fs *flag.FlagSet, sel selectorFlags) error {
	name := strings.TrimPrefix(fs.Name(), "redrive ")
	s := sel.selector()
	if s.IsEmpty() {
		return usagef(name, "%s: choose messages with --id, --all, --reason, --topic or --older-than", name)
	}
	if err := s.Validate(); err != nil {
		return usagef(name, "%s: %s", name, strings.TrimPrefix(err.Error(), "redrive/admin: "))
	}
	return nil
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

func (a *app) printRequeue(res admin.RequeueResult) {
	var rows []admin.Outcome
	for _, o := range res.Messages {
		if res.DryRun || o.Status != admin.StatusRequeued {
			rows = append(rows, o)
		}
	}
	a.printOutcomes(rows, true)
	a.hintNotPoisoned(res.Messages, res.Stream, "they cannot be requeued: their topic is unknown")
	fmt.Fprintln(a.stdout, summary(res.DryRun, "requeue", "requeued", res.Requeued, res.Matched, res.Scanned, res.Stream,
		res.Skipped, res.Gone, res.Failed))
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

func runPoisonPurge(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	var sel selectorFlags
	sel.register(fs, true)
	internal := fs.Bool("internal", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	force := fs.Bool("force", false, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "poison-topic"); err != nil {
		return err
	}
	if err := checkSelector(fs, sel); err != nil {
		return err
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	bar := a.progress("purged")
	res, err := adm.PurgePoisoned(ctx, poisonStream(pos[0], *internal), sel.selector(), admin.PurgeOptions{DryRun: *dryRun, Force: *force, Progress: bar.update})
	bar.done()
	if a.json {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	} else {
		var rows []admin.Outcome
		for _, o := range res.Messages {
			if res.DryRun || o.Status != admin.StatusPurged {
				rows = append(rows, o)
			}
		}
		a.printOutcomes(rows, false)
		a.hintNotPoisoned(res.Messages, pos[0], "--force deletes them anyway")
		fmt.Fprintln(a.stdout, summary(res.DryRun, "purge", "purged", res.Purged, res.Matched, res.Scanned, res.Stream,
			res.Skipped, res.Gone, res.Failed))
	}
	return a.finish(err, res.NotFound, res.Failed)
}

// delayedSets returns the sets a delayed command works on.
func delayedSets(ctx context.Context, adm *admin.Admin, topic, group string) ([]admin.DelayedSet, error) {
	if group != "" {
		return []admin.DelayedSet{admin.GroupDelayedSet(topic, group)}, nil
	}
	return adm.DelayedSets(ctx, topic)
}

func setName(s admin.DelayedSet) string {
	if s.Group == "" {
		return "topic"
	}
	return "group " + s.Group
}

func runDelayedList(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	group := fs.String("group", "", "")
	limit := fs.Int("limit", 100, "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "topic"); err != nil {
		return err
	}
	if *limit < 1 {
		return usagef("delayed list", "--limit must be at least 1, got %d", *limit)
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	sets, err := delayedSets(ctx, adm, pos[0], *group)
	if err != nil {
		return err
	}
	lists := make([]admin.DelayedList, 0, len(sets))
	for _, s := range sets {
		l, err := adm.ListDelayed(ctx, s, admin.ListDelayedOptions{Limit: *limit})
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
		fmt.Fprintf(a.stdout, "No delayed messages for %s.\n", pos[0])
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

func runDelayedRunNow(a *app, ctx context.Context, fs *flag.FlagSet, args []string) error {
	var ids stringList
	fs.Var(&ids, "id", "")
	all := fs.Bool("all", false, "")
	group := fs.String("group", "", "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos, "topic"); err != nil {
		return err
	}
	if *all == (len(ids) > 0) {
		return usagef("delayed run-now", "delayed run-now: give either --id or --all")
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return err
	}
	defer closeClient()
	sets, err := delayedSets(ctx, adm, pos[0], *group)
	if err != nil {
		return err
	}
	report := runNowReport{Sets: []admin.RunNowResult{}}
	moved := map[string]bool{}
	bar := a.progress("moved")
	var runErr error
	for _, s := range sets {
		res, err := adm.RunDelayedNow(ctx, s, admin.RunNowOptions{IDs: ids, All: *all, Progress: bar.update})
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
