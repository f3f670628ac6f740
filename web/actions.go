package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/redrive-go/redrive/admin"
)

// previewRows is how many outcomes a preview lists.
const previewRows = 20

// poisonAction is a requeue or purge as its form describes it.
type poisonAction struct {
	Op     string // "requeue" or "purge"
	Scope  string // "one", "selected" or "filter"
	Stream string
	Topic  string
	IDs    []string
	Filter poisonFilter
}

// Verb is the action's name for people.
func (a poisonAction) Verb() string {
	if a.Op == "purge" {
		return "Purge"
	}
	return "Requeue"
}

func readPoisonAction(h *Handler, r *http.Request) (poisonAction, error) {
	var a poisonAction
	var err error
	if a.Stream, a.Topic, err = h.poisonStream(r); err != nil {
		return a, err
	}
	a.Op, a.Scope = r.PostForm.Get("op"), r.PostForm.Get("scope")
	if a.Op != "requeue" && a.Op != "purge" {
		return a, badRequest("%q is not an action (requeue or purge).", trunc(a.Op, 40))
	}
	switch a.Scope {
	case "one", "selected":
		a.IDs = r.PostForm["id"]
		switch {
		case len(a.IDs) == 0:
			return a, badRequest("No message is selected.")
		case len(a.IDs) > maxSelected:
			return a, badRequest("%d messages are selected; at most %d can be, or use a filter.", len(a.IDs), maxSelected)
		case a.Scope == "one" && len(a.IDs) != 1:
			return a, badRequest("One message was expected, %d were given.", len(a.IDs))
		}
		for _, id := range a.IDs {
			if !entryIDPattern.MatchString(id) {
				return a, badRequest("%q is not a stream entry ID (like 1700000000000-0).", trunc(id, 60))
			}
		}
	case "filter":
		if a.Filter, err = readPoisonFilter(r); err != nil {
			return a, err
		}
	default:
		return a, badRequest("%q is not a scope (one, selected or filter).", trunc(a.Scope, 40))
	}
	return a, nil
}

// poisonChunkSize is how many messages one step of a requeue or purge
// handles. Each step's outcomes are summed and dropped, so a bulk action
// holds a bounded amount in memory on a stream of any size.
const poisonChunkSize = 1000

// poisonChunks calls fn with the IDs the action chooses, a chunk at a time,
// oldest first, and scanned with the entries read so far out of total. A
// filter reaches only the entries present when it starts, so a message
// poisoned again meanwhile is not handled twice.
func (h *Handler) poisonChunks(ctx context.Context, a poisonAction, fn func(ids []string, scanned, total int) error) error {
	if a.Scope != "filter" {
		return fn(a.IDs, len(a.IDs), len(a.IDs))
	}
	last, err := h.config.Client.XRevRangeN(ctx, a.Stream, "+", "-", 1).Result()
	if err != nil {
		return err
	}
	if len(last) == 0 {
		return nil
	}
	opts := admin.PagePoisonedOptions{Filter: a.Filter.selector(), Handler: a.Filter.Handler, Until: last[0].ID,
		Limit: poisonChunkSize, MaxScan: poisonChunkSize}
	scanned := 0
	for {
		page, err := h.admin.PagePoisoned(ctx, a.Stream, opts)
		if err != nil {
			return err
		}
		scanned += page.Scanned
		ids := make([]string, len(page.Messages))
		for i, m := range page.Messages {
			ids[i] = m.ID
		}
		if err := fn(ids, scanned, max(scanned, int(page.Total))); err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		opts.Cursor = page.Next
	}
}

// runPoisonAction performs the action (or its dry run) chunk by chunk with
// the admin operations, summing what they did.
func (h *Handler) runPoisonAction(ctx context.Context, a poisonAction, dryRun bool, progress admin.ProgressFunc) (outcomeSummary, error) {
	var sum outcomeSummary
	err := h.poisonChunks(ctx, a, func(ids []string, scanned, total int) error {
		var err error
		if len(ids) > 0 {
			sel := admin.Selector{IDs: ids}
			if a.Op == "purge" {
				var res admin.PurgeResult
				res, err = h.admin.PurgePoisoned(ctx, a.Stream, sel, admin.PurgeOptions{DryRun: dryRun})
				sum.add(res.ChangeResult, res.Purged)
			} else {
				var res admin.RequeueResult
				res, err = h.admin.RequeuePoisoned(ctx, a.Stream, sel, admin.RequeueOptions{DryRun: dryRun})
				sum.add(res.ChangeResult, res.Requeued)
			}
		}
		if progress != nil {
			progress(admin.Progress{Total: total, Scanned: scanned, Matched: sum.Matched, Done: sum.Done, Skipped: sum.Skipped})
		}
		return err
	})
	return sum, err
}

// outcomeSummary is what a requeue or purge did, whichever it was.
type outcomeSummary struct {
	Matched, Done, Skipped, Gone, Failed, NotFound int
	// Outcomes are the first previewRows outcomes.
	Outcomes []admin.Outcome
}

// add sums in one chunk's result, of which done were requeued or purged.
func (s *outcomeSummary) add(res admin.ChangeResult, done int) {
	s.Matched += res.Matched
	s.Done += done
	s.Skipped += res.Skipped
	s.Gone += res.Gone
	s.Failed += res.Failed
	s.NotFound += len(res.NotFound)
	if room := previewRows - len(s.Outcomes); room > 0 {
		s.Outcomes = append(s.Outcomes, res.Messages[:min(room, len(res.Messages))]...)
	}
}

func (s outcomeSummary) String(verb string, dryRun bool) string {
	text := fmt.Sprintf("%s %d of %d matching messages", verb, s.Done, s.Matched)
	if dryRun {
		text = fmt.Sprintf("Would %s %d of %d matching messages", verb, s.Done, s.Matched)
	}
	for _, part := range []struct {
		n    int
		what string
	}{{s.Skipped, "skipped"}, {s.Gone, "already gone"}, {s.Failed, "failed"}, {s.NotFound, "not found"}} {
		if part.n > 0 {
			text += fmt.Sprintf(", %d %s", part.n, part.what)
		}
	}
	return text + "."
}

type previewData struct {
	Kind    string // "poison" or "delayed"
	Title   string
	Summary string
	Count   int
	// Outcomes are the first previewRows outcomes of a poison dry run.
	Outcomes []admin.Outcome
	More     int
	// Delayed is the delayed action's target, for a delayed preview.
	Delayed delayedAction
	Poison  poisonAction
	Cancel  string
}

// poisonPreview shows the dry run of an action. A selection is small and
// answers at once; a filter may cover a huge stream, so its dry run runs in
// the background with a progress bar, and its page ends with the preview.
func (h *Handler) poisonPreview(w http.ResponseWriter, r *http.Request, p page) error {
	a, err := readPoisonAction(h, r)
	if err != nil {
		return err
	}
	if a.Scope == "filter" {
		j := h.jobs.start("Dry run: "+strings.ToLower(a.Verb())+" poisoned messages of "+a.Stream, "/poison?stream="+url.QueryEscape(a.Stream),
			func(ctx context.Context, progress admin.ProgressFunc) (jobResult, error) {
				d, err := h.poisonDryRun(ctx, a, progress)
				if err != nil {
					return jobResult{}, err
				}
				return jobResult{Summary: d.Summary, Preview: &d}, nil
			})
		http.Redirect(w, r, p.Base+"/job?id="+j.ID, http.StatusSeeOther)
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.config.ActionTimeout)
	defer cancel()
	d, err := h.poisonDryRun(ctx, a, nil)
	if err != nil {
		return err
	}
	p.Title, p.Nav, p.Data = d.Title, "poison", &d
	h.render(w, r, http.StatusOK, "preview", p)
	return nil
}

// poisonDryRun runs the action as a dry run and describes it for the
// preview.
func (h *Handler) poisonDryRun(ctx context.Context, a poisonAction, progress admin.ProgressFunc) (previewData, error) {
	s, err := h.runPoisonAction(ctx, a, true, progress)
	if err != nil {
		return previewData{}, err
	}
	d := previewData{Kind: "poison", Title: a.Verb() + " poisoned messages", Summary: s.String(strings.ToLower(a.Verb()), true),
		Count: s.Done, Poison: a, Cancel: "/poison?stream=" + url.QueryEscape(a.Stream),
		Outcomes: s.Outcomes, More: s.Matched - len(s.Outcomes)}
	if a.Scope == "one" {
		d.Cancel = "/message?stream=" + url.QueryEscape(a.Stream) + "&id=" + url.QueryEscape(a.IDs[0])
	}
	return d, nil
}

func (h *Handler) poisonRun(w http.ResponseWriter, r *http.Request, p page) error {
	a, err := readPoisonAction(h, r)
	if err != nil {
		return err
	}
	verb := map[string]string{"requeue": "Requeued", "purge": "Purged"}[a.Op]
	j := h.jobs.start(a.Verb()+" poisoned messages of "+a.Stream, "/poison?stream="+url.QueryEscape(a.Stream),
		func(ctx context.Context, progress admin.ProgressFunc) (jobResult, error) {
			s, err := h.runPoisonAction(ctx, a, false, progress)
			return jobResult{Summary: s.String(verb, false)}, err
		})
	http.Redirect(w, r, p.Base+"/job?id="+j.ID, http.StatusSeeOther)
	return nil
}

// delayedAction is a run-now as its form describes it.
type delayedAction struct {
	Set admin.DelayedSet
	// ID is the one message to run; "" runs every message of the set.
	ID string
}

func readDelayedAction(r *http.Request) (delayedAction, error) {
	set, err := delayedSet(r)
	if err != nil {
		return delayedAction{}, err
	}
	a := delayedAction{Set: set}
	switch r.PostForm.Get("scope") {
	case "all":
	case "one":
		if a.ID, err = name(r, "id"); err != nil {
			return a, err
		}
	default:
		return a, badRequest("%q is not a scope (one or all).", trunc(r.PostForm.Get("scope"), 40))
	}
	return a, nil
}

func (h *Handler) delayedPreview(w http.ResponseWriter, r *http.Request, p page) error {
	a, err := readDelayedAction(r)
	if err != nil {
		return err
	}
	d := previewData{Kind: "delayed", Title: "Run delayed messages now", Delayed: a,
		Cancel: "/topic?name=" + url.QueryEscape(a.Set.Topic)}
	if a.ID != "" {
		d.Count = 1
		d.Summary = fmt.Sprintf("Would move delayed message %s into %s now, ahead of its due time.", a.ID, a.Set.Stream)
	} else {
		n, err := h.config.Client.ZCard(r.Context(), a.Set.Key).Result()
		if err != nil {
			return err
		}
		d.Count = int(n)
		d.Summary = fmt.Sprintf("Would move all %d waiting messages into %s now, ahead of their due time.", n, a.Set.Stream)
	}
	p.Title, p.Nav, p.Data = d.Title, "topic", &d
	h.render(w, r, http.StatusOK, "preview", p)
	return nil
}

func (h *Handler) delayedRun(w http.ResponseWriter, r *http.Request, p page) error {
	a, err := readDelayedAction(r)
	if err != nil {
		return err
	}
	opts := admin.RunNowOptions{All: a.ID == ""}
	if a.ID != "" {
		opts.IDs = []string{a.ID}
	}
	j := h.jobs.start("Run delayed messages of "+a.Set.Topic+" now", "/topic?name="+url.QueryEscape(a.Set.Topic),
		func(ctx context.Context, progress admin.ProgressFunc) (jobResult, error) {
			opts.Progress = progress
			res, err := h.admin.RunDelayedNow(ctx, a.Set, opts)
			s := fmt.Sprintf("Moved %d delayed messages into %s.", res.Moved, a.Set.Stream)
			if res.Gone > 0 {
				s += fmt.Sprintf(" %d were moved by a subscriber first.", res.Gone)
			}
			return jobResult{Summary: s}, err
		})
	http.Redirect(w, r, p.Base+"/job?id="+j.ID, http.StatusSeeOther)
	return nil
}
