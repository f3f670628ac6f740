package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/humanize"
	"github.com/redrive-go/redrive/internal/wire"
)

// overviewRow is one topic of the overview, formatted here rather than in
// the template: a thousand rows of template calls cost more than the Redis
// reads behind them.
type overviewRow struct {
	Topic         string
	IsPoisonTopic bool
	LastEntry     string
	LastEntryAt   string
	Length        string
	Memory        string
	Groups        int
	Lag           string
	LagGrowing    bool
	Pending       string
	Delayed       string
	Retries       string
	// Poisoned is the count to show, and PoisonStream where it links ("" for
	// none).
	Poisoned     string
	PoisonStream string
	// Problems explains why the row stands out; empty for a healthy topic.
	Problems []string

	summary admin.TopicSummary
}

func newOverviewRow(t admin.TopicSummary, lagGrowing bool, now time.Time) overviewRow {
	row := overviewRow{
		Topic: t.Topic, IsPoisonTopic: t.IsPoisonTopic, Length: num(t.Length), Groups: t.Groups, Lag: num(t.Lag),
		LagGrowing: lagGrowing, Pending: num(t.Pending), Delayed: num(t.Delayed), Retries: num(t.RetriesWaiting),
		Memory: "—", LastEntry: "empty", Poisoned: num(t.Poisoned), summary: t,
	}
	if t.MemoryBytes > 0 {
		row.Memory = humanize.Bytes(t.MemoryBytes)
	}
	if !t.LastEntryAt.IsZero() {
		row.LastEntry, row.LastEntryAt = "last entry "+ago(t.LastEntryAt, now), stamp(t.LastEntryAt)
	}
	switch {
	case t.IsPoisonTopic:
		row.Poisoned, row.PoisonStream = num(t.Length), t.Topic
	case t.Poisoned > 0:
		row.PoisonStream = t.PoisonStream
	}
	if t.Poisoned > 0 {
		row.Problems = append(row.Problems, "poisoned messages")
	}
	if t.IsPoisonTopic && t.Length > 0 {
		row.Problems = append(row.Problems, "poison topic holds messages")
	}
	if lagGrowing {
		row.Problems = append(row.Problems, "lag growing")
	}
	if len(t.IdleGroups) > 0 {
		row.Problems = append(row.Problems, "not reading: "+strings.Join(t.IdleGroups, ", "))
	}
	return row
}

type overviewData struct {
	Rows     []overviewRow
	Sort     string
	Desc     bool
	Columns  []overviewColumn
	Problems int
	Poisoned int64
	Lag      int64
	Match    string
}

type overviewColumn struct {
	Key, Label string
	Numeric    bool
}

var overviewColumns = []overviewColumn{
	{"topic", "Topic", false},
	{"length", "Length", true},
	{"memory", "Memory", true},
	{"groups", "Groups", true},
	{"lag", "Lag", true},
	{"pending", "Pending", true},
	{"delayed", "Delayed", true},
	{"retries", "Retries waiting", true},
	{"poisoned", "Poisoned", true},
}

// overviewKeys are the sort keys, "problems" (the default) first.
var overviewKeys = map[string]func(admin.TopicSummary) int64{
	"length":   func(t admin.TopicSummary) int64 { return t.Length },
	"memory":   func(t admin.TopicSummary) int64 { return t.MemoryBytes },
	"groups":   func(t admin.TopicSummary) int64 { return int64(t.Groups) },
	"lag":      func(t admin.TopicSummary) int64 { return t.Lag },
	"pending":  func(t admin.TopicSummary) int64 { return t.Pending },
	"delayed":  func(t admin.TopicSummary) int64 { return t.Delayed },
	"retries":  func(t admin.TopicSummary) int64 { return t.RetriesWaiting },
	"poisoned": func(t admin.TopicSummary) int64 { return t.Poisoned },
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, p page) error {
	sortKey := r.FormValue("sort")
	if _, ok := overviewKeys[sortKey]; !ok && sortKey != "" && sortKey != "topic" && sortKey != "problems" {
		return badRequest("%q is not a column to sort by.", trunc(sortKey, 40))
	}
	desc := r.FormValue("desc") == "1"
	topics, err := h.admin.ListTopics(r.Context(), admin.ListTopicsOptions{Match: h.config.TopicMatch, IdleGroupAfter: h.config.IdleGroupAfter})
	if err != nil {
		return err
	}
	d := overviewData{Sort: sortKey, Desc: desc, Columns: overviewColumns, Match: h.config.TopicMatch}
	for _, t := range topics {
		row := newOverviewRow(t, h.sampler.lagGrowing(t.Topic), p.Now)
		if len(row.Problems) > 0 {
			d.Problems++
		}
		d.Poisoned += t.Poisoned
		if t.IsPoisonTopic {
			d.Poisoned += t.Length
		}
		if t.Lag > 0 {
			d.Lag += t.Lag
		}
		d.Rows = append(d.Rows, row)
	}
	key := overviewKeys[sortKey]
	slices.SortStableFunc(d.Rows, func(a, b overviewRow) int {
		var c int
		switch {
		case key != nil:
			c = cmp.Compare(key(a.summary), key(b.summary))
		case sortKey == "topic":
			c = strings.Compare(a.Topic, b.Topic)
		default: // problems first, then by name
			c = -cmp.Compare(len(a.Problems), len(b.Problems))
			if desc {
				c = -c
			}
			if c == 0 {
				c = strings.Compare(a.Topic, b.Topic)
			}
			return c
		}
		if desc {
			c = -c
		}
		return c
	})
	p.Title, p.Nav, p.Data = "Topics", "overview", d
	h.render(w, r, http.StatusOK, "overview", p)
	return nil
}

// topicPreviewRows is how many delayed messages and retries the topic page
// shows per set; the delayed page pages through the rest.
const topicPreviewRows = 10

type topicData struct {
	Info admin.TopicInfo
	// OldestPending is, per group and consumer, when the consumer's oldest
	// pending entry entered the stream.
	OldestPending map[string]map[string]time.Time
	Charts        []chart
	Delayed       []delayedSection
	Memory        int64
}

type delayedSection struct {
	Set  admin.DelayedSet
	List admin.DelayedList
}

func (h *Handler) topic(w http.ResponseWriter, r *http.Request, p page) error {
	topic, err := name(r, "name")
	if err != nil {
		return err
	}
	info, err := h.admin.TopicInfo(r.Context(), topic, admin.TopicInfoOptions{RetainAcked: h.config.RetainAcked})
	if err != nil {
		return err
	}
	if !info.Exists && info.Delayed.Count == 0 && info.Poisoned == 0 {
		return notFound("There is no topic %q.", topic)
	}
	h.sampler.watch(topic)
	d := topicData{Info: info, Charts: buildCharts(h.sampler.history(topic), p.Now, h.config.SampleWindow)}
	if mem, err := h.config.Client.MemoryUsage(r.Context(), topic).Result(); err == nil {
		d.Memory = mem
	}
	if d.OldestPending, err = h.oldestPendingPerConsumer(r.Context(), info); err != nil {
		return err
	}
	sets := []admin.DelayedSet{admin.TopicDelayedSet(topic)}
	for _, g := range info.Groups {
		sets = append(sets, admin.GroupDelayedSet(topic, g.Name))
	}
	for _, set := range sets {
		list, err := h.admin.ListDelayed(r.Context(), set, admin.ListDelayedOptions{Limit: topicPreviewRows})
		if err != nil {
			return err
		}
		d.Delayed = append(d.Delayed, delayedSection{Set: set, List: list})
	}
	p.Title, p.Nav, p.Data = topic, "topic", d
	h.render(w, r, http.StatusOK, "topic", p)
	return nil
}

// oldestPendingPerConsumer reads, with one pipelined XPENDING per consumer
// that holds entries, the oldest entry each one holds.
func (h *Handler) oldestPendingPerConsumer(ctx context.Context, info admin.TopicInfo) (map[string]map[string]time.Time, error) {
	type ask struct {
		group, consumer string
		cmd             *redis.XPendingExtCmd
	}
	var asks []ask
	pipe := h.config.Client.Pipeline()
	for _, g := range info.Groups {
		for _, c := range g.Consumers {
			if c.Pending > 0 {
				cmd := pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: info.Stream, Group: g.Name, Start: "-", End: "+", Count: 1, Consumer: c.Name})
				asks = append(asks, ask{g.Name, c.Name, cmd})
			}
		}
	}
	out := map[string]map[string]time.Time{}
	if len(asks) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		var replyErr redis.Error
		if !errors.As(err, &replyErr) {
			return nil, err
		}
	}
	for _, a := range asks {
		if p := a.cmd.Val(); len(p) > 0 {
			if out[a.group] == nil {
				out[a.group] = map[string]time.Time{}
			}
			out[a.group][a.consumer] = wire.EntryTime(p[0].ID)
		}
	}
	return out, nil
}

// topicCharts serves the charts alone, for the topic page's script to
// refresh them in place.
func (h *Handler) topicCharts(w http.ResponseWriter, r *http.Request, p page) error {
	topic, err := name(r, "name")
	if err != nil {
		return err
	}
	h.sampler.watch(topic)
	p.Data = buildCharts(h.sampler.history(topic), p.Now, h.config.SampleWindow)
	t := h.pages["charts"]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return t.ExecuteTemplate(w, "chart-list", p)
}

// delayedPageRows is the page size of the delayed page.
const delayedPageRows = 50

type delayedData struct {
	Set              admin.DelayedSet
	List             admin.DelayedList
	Offset, Next     int
	Prev             int
	HasPrev, HasNext bool
}

func (h *Handler) delayedList(w http.ResponseWriter, r *http.Request, p page) error {
	set, err := delayedSet(r)
	if err != nil {
		return err
	}
	offset := 0
	if v := r.FormValue("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 || offset > 1<<30 {
			return badRequest("%q is not a page offset.", trunc(v, 40))
		}
	}
	list, err := h.admin.ListDelayed(r.Context(), set, admin.ListDelayedOptions{Offset: offset, Limit: delayedPageRows})
	if err != nil {
		return err
	}
	d := delayedData{Set: set, List: list, Offset: offset,
		HasPrev: offset > 0, Prev: max(0, offset-delayedPageRows),
		HasNext: int64(offset+delayedPageRows) < list.Total, Next: offset + delayedPageRows}
	p.Title, p.Nav, p.Data = "Delayed: "+set.Topic, "topic", d
	h.render(w, r, http.StatusOK, "delayed", p)
	return nil
}

// delayedSet reads the topic and optional group naming a delayed set.
func delayedSet(r *http.Request) (admin.DelayedSet, error) {
	topic, err := name(r, "topic")
	if err != nil {
		return admin.DelayedSet{}, err
	}
	if r.FormValue("group") == "" {
		return admin.TopicDelayedSet(topic), nil
	}
	group, err := name(r, "group")
	if err != nil {
		return admin.DelayedSet{}, err
	}
	return admin.GroupDelayedSet(topic, group), nil
}

func (h *Handler) jobPage(w http.ResponseWriter, r *http.Request, p page) error {
	j, err := h.findJob(r)
	if err != nil {
		return err
	}
	v := j.view()
	p.Title, p.Nav, p.Data = v.Title, "job", v
	h.render(w, r, http.StatusOK, "job", p)
	return nil
}

func (h *Handler) jobStatus(w http.ResponseWriter, r *http.Request, _ page) error {
	j, err := h.findJob(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(j.view())
}

func (h *Handler) findJob(r *http.Request) (*job, error) {
	id := r.FormValue("id")
	j, ok := h.jobs.get(id)
	if !ok {
		return nil, notFound("There is no action %q (only the last %d are kept, until the server restarts).", trunc(id, 40), keptJobs)
	}
	return j, nil
}
