package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// ChangeResult is what a requeue and a purge of a poison stream report
// alike. RequeueResult and PurgeResult embed it, so their JSON stays flat.
type ChangeResult struct {
	// Stream is the poison stream.
	Stream string `json:"stream"`
	// DryRun is true when nothing was changed.
	DryRun bool `json:"dry_run"`
	// Scanned is how many poison entries were looked at.
	Scanned int `json:"scanned"`
	// Matched is how many the selector chose.
	Matched int `json:"matched"`
	// Skipped is how many were left alone: a requeue skips those it cannot
	// requeue, a purge those without poison metadata (see
	// PurgeOptions.Force); Outcome.Note says why.
	Skipped int `json:"skipped"`
	// Gone is how many another operation took first, and Failed how many
	// Redis refused to change.
	Gone   int `json:"gone"`
	Failed int `json:"failed"`
	// NotFound are the IDs asked for that are not in the stream.
	NotFound []string `json:"not_found,omitempty"`
	// Messages is the outcome for each selected message, in stream order.
	Messages []Outcome `json:"messages"`
}

// tally adds the outcomes of one batch to the totals and returns how many
// of them were requeued or purged (or would be, in a dry run). An outcome
// left without a status by a failed batch is marked failed.
func (r *ChangeResult) tally(outs []Outcome, batchErr error) (done int) {
	for i := range outs {
		o := &outs[i]
		if o.Status == "" {
			o.Status = StatusFailed
			if batchErr != nil {
				o.Note = batchErr.Error()
			}
		}
		switch o.Status {
		case StatusRequeued, StatusWouldRequeue, StatusPurged, StatusWouldPurge:
			done++
		case StatusSkipped:
			r.Skipped++
		case StatusGone:
			r.Gone++
		case StatusFailed:
			r.Failed++
		}
	}
	return done
}

// poisonChange is one run of a requeue or a purge.
type poisonChange struct {
	// op names it in errors ("requeue"), done in logs ("requeued").
	op, done string
	sel      Selector
	now      time.Time
	progress ProgressFunc
	// batch changes (or, in a dry run, plans) the selected messages of one
	// batch, writing the outcome of msgs[i] to outs[i], the result's
	// Messages for them; an outcome it leaves without a status counts as
	// failed. Pointers into outs stay valid while batch runs.
	batch func(msgs []PoisonedMessage, outs []Outcome) error
}

// changePoison runs c over the poison stream res.Stream, batch by batch,
// summing what it did into res and *done. It returns what it did even when
// it stops on an error or a cancelled ctx.
func (a *Admin) changePoison(ctx context.Context, c poisonChange, res *ChangeResult, done *int) error {
	if res.Stream == "" {
		return errors.New("redrive/admin: poison stream is empty")
	}
	if err := c.sel.validateForChange(); err != nil {
		return err
	}
	total, err := a.scanTotal(ctx, res.Stream, c.sel)
	if err != nil {
		return err
	}
	err = a.scanPoison(ctx, res.Stream, c.sel, c.now, &res.NotFound, func(batch []PoisonedMessage, scanned int) error {
		res.Scanned = scanned
		res.Matched += len(batch)
		first := len(res.Messages)
		res.Messages = append(res.Messages, make([]Outcome, len(batch))...)
		outs := res.Messages[first:]
		err := c.batch(batch, outs)
		*done += res.tally(outs, err)
		if c.progress != nil {
			c.progress(Progress{Total: total, Scanned: res.Scanned, Matched: res.Matched, Done: *done, Skipped: res.Skipped})
		}
		return err
	})
	if !res.DryRun {
		a.logger.Info(strings.ToUpper(c.done[:1])+c.done[1:]+" poisoned messages", watermill.LogFields{
			"poison_stream": res.Stream, c.done: *done, "skipped": res.Skipped,
			"gone": res.Gone, "failed": res.Failed, "complete": err == nil,
		})
	}
	if err != nil {
		return fmt.Errorf("redrive/admin: %s from %q: %w", c.op, res.Stream, err)
	}
	return nil
}

// scanTotal is the Progress.Total of an operation on sel.
func (a *Admin) scanTotal(ctx context.Context, stream string, sel Selector) (int, error) {
	if len(sel.IDs) > 0 {
		return len(sel.IDs), nil
	}
	n, err := a.client.XLen(ctx, stream).Result()
	if err != nil {
		return 0, fmt.Errorf("redrive/admin: read poison stream %q: %w", stream, err)
	}
	return int(n), nil
}
