package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for PagePoisonedOptions.
const (
	// DefaultPoisonPageLimit is how many messages a page holds.
	DefaultPoisonPageLimit = 50
	// DefaultPoisonPageMaxScan is how many entries one page reads at most
	// while looking for matches, so that a rare filter on a huge stream
	// answers quickly with a cursor instead of reading everything.
	DefaultPoisonPageMaxScan = 10_000
)

// PagePoisonedOptions chooses a page of PagePoisoned.
type PagePoisonedOptions struct {
	// Filter narrows the page by reason, original topic and age; its IDs
	// and All are ignored.
	Filter Selector
	// Handler, when set, keeps only messages whose handler_poisoned is
	// exactly this.
	Handler string
	// NewestFirst lists from the newest entry back (the default is oldest
	// first).
	NewestFirst bool
	// Cursor continues a listing after (or, newest first, before) this
	// entry ID: PoisonPage.Next of the previous page.
	Cursor string
	// Until, when set, is the newest entry ID the listing may reach, so
	// that a bulk action paging through a stream stops at the entries that
	// were there when it started.
	Until string
	// Limit is the most messages on a page. Default DefaultPoisonPageLimit.
	Limit int
	// MaxScan is the most entries read for one page. Default
	// DefaultPoisonPageMaxScan.
	MaxScan int
}

// PoisonPage is a page of poisoned messages, without payloads or history.
type PoisonPage struct {
	// Stream is the poison stream.
	Stream string `json:"stream"`
	// Total is the number of entries in it, matching or not.
	Total int64 `json:"total"`
	// Messages are the matching messages of the page.
	Messages []PoisonedMessage `json:"messages"`
	// Scanned is how many entries were read for the page.
	Scanned int `json:"scanned"`
	// Next, when not empty, is the Cursor of the next page: the page is
	// full, or MaxScan entries were read before the end.
	Next string `json:"next,omitempty"`
}

// PagePoisoned reads one page of a poison stream by entry ID: it never reads
// more than opts.MaxScan entries, so its cost does not grow with the stream,
// whatever the filter.
func (a *Admin) PagePoisoned(ctx context.Context, poisonStream string, opts PagePoisonedOptions) (PoisonPage, error) {
	if poisonStream == "" {
		return PoisonPage{}, errors.New("redrive/admin: poison stream is empty")
	}
	sel := opts.Filter
	sel.IDs, sel.All = nil, false
	if err := sel.Validate(); err != nil {
		return PoisonPage{}, err
	}
	if opts.Cursor != "" && !validEntryID(opts.Cursor) {
		return PoisonPage{}, fmt.Errorf("redrive/admin: cursor %q is not a stream entry ID", opts.Cursor)
	}
	if opts.Until != "" && !validEntryID(opts.Until) {
		return PoisonPage{}, fmt.Errorf("redrive/admin: Until %q is not a stream entry ID", opts.Until)
	}
	if opts.Limit <= 0 {
		opts.Limit = DefaultPoisonPageLimit
	}
	if opts.MaxScan <= 0 {
		opts.MaxScan = DefaultPoisonPageMaxScan
	}
	total, err := a.client.XLen(ctx, poisonStream).Result()
	if err != nil {
		return PoisonPage{}, fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
	}
	page := PoisonPage{Stream: poisonStream, Total: total, Messages: []PoisonedMessage{}}
	now := time.Now()
	// Entry IDs grow with time, so the age filter is also a bound.
	newestAllowed := "+"
	if sel.OlderThan > 0 {
		newestAllowed = strconv.FormatInt(now.Add(-sel.OlderThan).UnixMilli(), 10) + "-18446744073709551615"
	}
	if opts.Until != "" && (newestAllowed == "+" || compareIDs(opts.Until, newestAllowed) < 0) {
		newestAllowed = opts.Until
	}
	lo, hi := "-", newestAllowed
	if opts.Cursor != "" {
		if opts.NewestFirst {
			if hi == "+" || compareIDs(opts.Cursor, hi) <= 0 {
				hi = "(" + opts.Cursor
			}
		} else {
			lo = "(" + opts.Cursor
		}
	}
	batch := int64(min(a.config.BatchSize, opts.MaxScan))
	for page.Scanned < opts.MaxScan {
		n := min(batch, int64(opts.MaxScan-page.Scanned))
		var entries []redis.XMessage
		if opts.NewestFirst {
			entries, err = a.client.XRevRangeN(ctx, poisonStream, hi, lo, n).Result()
		} else {
			entries, err = a.client.XRangeN(ctx, poisonStream, lo, hi, n).Result()
		}
		if err != nil {
			return PoisonPage{}, fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
		}
		for _, e := range entries {
			page.Scanned++
			m := a.decodePoisoned(e, false)
			if sel.matches(&m, now) && (opts.Handler == "" || m.Handler == opts.Handler) {
				m.History = nil
				page.Messages = append(page.Messages, m)
			}
			if len(page.Messages) == opts.Limit || page.Scanned == opts.MaxScan {
				page.Next = e.ID
				return page, nil
			}
		}
		if int64(len(entries)) < n {
			return page, nil
		}
		last := entries[len(entries)-1].ID
		if opts.NewestFirst {
			hi = "(" + last
		} else {
			lo = "(" + last
		}
	}
	return page, nil
}
