package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/wire"
	"github.com/redrive-go/redrive/middleware"
)

// Metadata that a requeue adds to a message.
const (
	// MetadataRequeuedAt is when the message was last requeued from a poison
	// stream (RFC 3339 with nanoseconds, UTC).
	MetadataRequeuedAt = "redrive_requeued_at"
	// MetadataRequeueCount is how many times the message was requeued from a
	// poison stream.
	MetadataRequeueCount = "redrive_requeue_count"
)

// ErrNotFound is returned when a poisoned or delayed message asked for by ID
// does not exist.
var ErrNotFound = errors.New("redrive/admin: not found")

// PoisonStreamOf returns the stream where the Subscriber moves the entries of
// topic it cannot deliver (undecodable, or delivered too many times), as
// opposed to a poison topic chosen for the retry middleware. Every poison
// operation takes either.
func PoisonStreamOf(topic string) string {
	return redrive.KeysFor(topic).Poison
}

// PoisonedMessage is one entry of a poison stream.
type PoisonedMessage struct {
	// ID is the entry's ID in the poison stream; requeue and purge take it.
	ID string `json:"id"`
	// PoisonedAt is when the entry was added to the poison stream (its ID's
	// time). Selector.OlderThan counts from it.
	PoisonedAt time.Time `json:"poisoned_at"`
	// UUID is the Watermill message UUID.
	UUID string `json:"uuid"`
	// Reason is why it was poisoned (reason_poisoned).
	Reason string `json:"reason"`
	// ReasonCode is the same reason as a code (redrive.MetadataPoisonReason;
	// for a message poisoned before that was written, derived from Reason by
	// middleware.PoisonReasonOf). Empty when the entry cannot be decoded.
	ReasonCode redrive.PoisonReason `json:"reason_code,omitempty"`
	// OriginalTopic is the topic it was consumed from (topic_poisoned).
	OriginalTopic string `json:"original_topic"`
	// Handler is the handler that failed on it (handler_poisoned).
	Handler string `json:"handler,omitempty"`
	// Subscriber is the subscriber that read it (subscriber_poisoned).
	Subscriber string `json:"subscriber,omitempty"`
	// ConsumerGroup is the consumer group the Subscriber could not deliver
	// it to (redrive_consumer_group); empty when the retry middleware
	// poisoned it.
	ConsumerGroup string `json:"consumer_group,omitempty"`
	// SourceStream and SourceID are where the Subscriber read the entry it
	// poisoned (empty when the retry middleware poisoned it).
	SourceStream string `json:"source_stream,omitempty"`
	SourceID     string `json:"source_id,omitempty"`

	// Attempts is how many times its handler failed.
	Attempts int `json:"attempts"`
	// FirstFailedAt and LastFailedAt are the first and last failure; zero
	// when unknown.
	FirstFailedAt time.Time `json:"first_failed_at,omitzero"`
	LastFailedAt  time.Time `json:"last_failed_at,omitzero"`
	// LastError is the handler's last error.
	LastError string `json:"last_error,omitempty"`
	// History is the retry history, the last attempts first to last.
	History []middleware.Attempt `json:"history,omitempty"`
	// RequeueCount is how many times it was requeued before
	// (MetadataRequeueCount).
	RequeueCount int `json:"requeue_count,omitempty"`

	// Undecodable is true when the original entry could not be decoded: the
	// poison entry then carries its fields as they were, and a requeue writes
	// them back unchanged.
	Undecodable bool `json:"undecodable,omitempty"`
	// DecodeError is set when the poison entry itself cannot be decoded; it
	// can then be purged but not requeued.
	DecodeError string `json:"decode_error,omitempty"`

	// Metadata is the message's whole metadata. ShowPoisoned fills it.
	Metadata map[string]string `json:"metadata,omitempty"`
	// PayloadSize is the payload's length in bytes, always filled.
	PayloadSize int `json:"payload_size"`
	// Payload is the message's payload (base64 in JSON), filled only when
	// asked for: payloads can hold personal data.
	Payload []byte `json:"payload,omitempty"`
	// RawFields are the original fields of an undecodable entry, filled
	// only when the payload is asked for, as they may hold it.
	RawFields map[string]string `json:"raw_fields,omitempty"`

	msg    *message.Message
	fields map[string]interface{}
}

// Selector chooses poisoned messages. Its criteria combine: a message is
// chosen when it matches all of those set. Requeue and purge refuse an empty
// Selector, so that a forgotten flag never touches everything; use All.
type Selector struct {
	// IDs chooses these poison entry IDs only.
	IDs []string
	// All chooses every message (further narrowed by the filters below).
	All bool
	// ReasonContains chooses messages whose reason contains this text, in
	// any case.
	ReasonContains string
	// OriginalTopic chooses messages poisoned from this topic.
	OriginalTopic string
	// OlderThan chooses messages poisoned at least this long ago.
	OlderThan time.Duration
}

// IsEmpty reports whether s chooses nothing by itself.
func (s Selector) IsEmpty() bool {
	return len(s.IDs) == 0 && !s.All && s.ReasonContains == "" && s.OriginalTopic == "" && s.OlderThan == 0
}

// Validate reports a Selector that cannot be used.
func (s Selector) Validate() error {
	if s.OlderThan < 0 {
		return fmt.Errorf("redrive/admin: Selector.OlderThan is %s, must be positive", s.OlderThan)
	}
	if s.All && len(s.IDs) > 0 {
		return errors.New("redrive/admin: Selector has both All and IDs; give one")
	}
	for _, id := range s.IDs {
		if !validEntryID(id) {
			return fmt.Errorf("redrive/admin: %q is not a stream entry ID (like 1700000000000-0)", id)
		}
	}
	return nil
}

// validateForChange is Validate, plus the refusal of an empty selector.
func (s Selector) validateForChange() error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.IsEmpty() {
		return errors.New("redrive/admin: no messages selected: give IDs, All, or a filter (reason, original topic, age)")
	}
	return nil
}

// matches reports whether m passes the filters (IDs are applied by the scan).
func (s Selector) matches(m *PoisonedMessage, now time.Time) bool {
	if s.ReasonContains != "" && !strings.Contains(strings.ToLower(m.Reason), strings.ToLower(s.ReasonContains)) {
		return false
	}
	if s.OriginalTopic != "" && m.OriginalTopic != s.OriginalTopic {
		return false
	}
	if s.OlderThan > 0 && now.Sub(m.PoisonedAt) < s.OlderThan {
		return false
	}
	return true
}

// ListPoisonedOptions chooses what ListPoisoned returns.
type ListPoisonedOptions struct {
	// Filter narrows the list; an empty Filter lists everything. With IDs,
	// only those entries are listed (and After is ignored).
	Filter Selector
	// After continues a listing after this entry ID (ListPoisoned's Next).
	After string
	// Limit is the most messages returned; 0 means 100.
	Limit int
	// Payload includes payloads. Off by default: payloads can hold personal
	// data.
	Payload bool
}

// PoisonedList is a page of poisoned messages.
type PoisonedList struct {
	// Stream is the poison stream.
	Stream string `json:"stream"`
	// Total is the number of entries in it, matching or not.
	Total int64 `json:"total"`
	// Messages are the matching messages, oldest first.
	Messages []PoisonedMessage `json:"messages"`
	// Next, when not empty, is the After of the next page.
	Next string `json:"next,omitempty"`
	// Exists is false when the stream does not exist.
	Exists bool `json:"exists"`
	// Unpoisoned is how many of Messages carry no poison metadata: when it
	// is all of them, the stream is probably not a poison topic.
	Unpoisoned int `json:"unpoisoned,omitempty"`
}

// ListPoisoned lists the messages of a poison stream (a poison topic, or
// PoisonStreamOf(topic)), oldest first, without payloads unless asked.
func (a *Admin) ListPoisoned(ctx context.Context, poisonStream string, opts ListPoisonedOptions) (PoisonedList, error) {
	if poisonStream == "" {
		return PoisonedList{}, errors.New("redrive/admin: poison stream is empty")
	}
	if err := opts.Filter.Validate(); err != nil {
		return PoisonedList{}, err
	}
	if opts.After != "" && !validEntryID(opts.After) {
		return PoisonedList{}, fmt.Errorf("redrive/admin: After %q is not a stream entry ID", opts.After)
	}
	if opts.Limit <= 0 {
		opts.Limit = 100
	}
	total, err := a.client.XLen(ctx, poisonStream).Result()
	if err != nil {
		return PoisonedList{}, fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
	}
	exists, err := a.client.Exists(ctx, poisonStream).Result()
	if err != nil {
		return PoisonedList{}, fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
	}
	list := PoisonedList{Stream: poisonStream, Total: total, Messages: []PoisonedMessage{}, Exists: exists == 1}
	sc := scan{from: opts.After, limit: opts.Limit + 1, payload: opts.Payload}
	collect := func(batch []PoisonedMessage, _ int) error {
		list.Messages = append(list.Messages, batch...)
		if len(list.Messages) > opts.Limit {
			return errStopScan
		}
		return nil
	}
	if len(opts.Filter.IDs) > 0 {
		err = a.scanPoisonIDs(ctx, poisonStream, opts.Filter, time.Now(), sc, nil, collect)
	} else {
		err = a.scanPoisonWith(ctx, poisonStream, opts.Filter, time.Now(), sc, collect)
	}
	if err != nil {
		return PoisonedList{}, err
	}
	if len(list.Messages) > opts.Limit {
		list.Messages = list.Messages[:opts.Limit]
		list.Next = list.Messages[opts.Limit-1].ID
	}
	for i := range list.Messages {
		list.Messages[i].History = nil // the list stays light; ShowPoisoned has it
	}
	list.Unpoisoned = countUnpoisoned(list.Messages)
	return list, nil
}

// ShowOptions chooses what ShowPoisoned includes.
type ShowOptions struct {
	// Payload includes the payload. Off by default: payloads can hold
	// personal data.
	Payload bool
}

// ShowPoisoned returns one poisoned message in full: all its metadata and
// retry history, and its payload when asked. It returns an error wrapping
// ErrNotFound when no entry has that ID.
func (a *Admin) ShowPoisoned(ctx context.Context, poisonStream, id string, opts ShowOptions) (PoisonedMessage, error) {
	if !validEntryID(id) {
		return PoisonedMessage{}, fmt.Errorf("redrive/admin: %q is not a stream entry ID (like 1700000000000-0)", id)
	}
	entries, err := a.client.XRange(ctx, poisonStream, id, id).Result()
	if err != nil {
		return PoisonedMessage{}, fmt.Errorf("redrive/admin: read %s from %q: %w", id, poisonStream, err)
	}
	if len(entries) == 0 {
		return PoisonedMessage{}, fmt.Errorf("%w: no entry %s in poison stream %q", ErrNotFound, id, poisonStream)
	}
	m := a.decodePoisoned(entries[0], opts.Payload)
	if m.msg != nil {
		m.Metadata = map[string]string(m.msg.Metadata)
	}
	return m, nil
}

// decodePoisoned reads a poison entry. It never fails: an entry that cannot
// be decoded is described by DecodeError.
func (a *Admin) decodePoisoned(e redis.XMessage, payload bool) PoisonedMessage {
	m := PoisonedMessage{ID: e.ID, PoisonedAt: wire.EntryTime(e.ID), fields: e.Values}
	if raw, ok := e.Values[redrive.RawFieldsField].(string); ok {
		m.Undecodable = true
		if payload {
			m.RawFields = decodeRawFields(raw)
		}
	}
	msg, err := wire.DecodeEntry(a.config.Unmarshaller, e.ID, e.Values)
	if err != nil {
		m.DecodeError = err.Error()
		m.UUID, _ = e.Values[redrive.UUIDHeaderKey].(string)
		return m
	}
	m.msg = msg
	md := msg.Metadata
	m.UUID = msg.UUID
	m.Reason = md.Get(wmiddleware.ReasonForPoisonedKey)
	m.ReasonCode = middleware.PoisonReasonOf(md)
	m.OriginalTopic = md.Get(wmiddleware.PoisonedTopicKey)
	m.Handler = md.Get(wmiddleware.PoisonedHandlerKey)
	m.Subscriber = md.Get(wmiddleware.PoisonedSubscriberKey)
	m.ConsumerGroup = md.Get(redrive.MetadataPoisonedConsumerGroup)
	m.SourceStream = md.Get(redrive.MetadataPoisonedSourceStream)
	m.SourceID = md.Get(redrive.MetadataPoisonedSourceID)
	m.RequeueCount, _ = strconv.Atoi(md.Get(MetadataRequeueCount))
	// The parts of the retry state that parse are shown; a malformed value
	// (written by someone else) must not hide the message.
	if st, err := middleware.ReadRetryState(md); err == nil {
		m.Attempts, m.FirstFailedAt, m.LastFailedAt, m.History = st.Attempts, st.FirstFailedAt, st.LastFailedAt, st.History
	} else {
		m.Attempts, _ = strconv.Atoi(md.Get(middleware.MetadataAttempts))
	}
	m.LastError = md.Get(middleware.MetadataLastError)
	m.PayloadSize = len(msg.Payload)
	if payload {
		m.Payload = msg.Payload
	}
	return m
}

// decodeRawFields reads the msgpack map of an undecodable entry's fields.
func decodeRawFields(raw string) map[string]string {
	var values map[string]interface{}
	if err := msgpack.Unmarshal([]byte(raw), &values); err != nil {
		return nil
	}
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = rawString(v)
	}
	return out
}

func rawString(v interface{}) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// scan says which part of a poison stream scanPoisonWith reads.
type scan struct {
	// from is the entry ID after which to start ("" for the beginning).
	from string
	// limit stops the scan once this many messages matched (0: no limit).
	limit int
	// payload decodes payloads into the results.
	payload bool
}

// errStopScan ends a scan early without an error.
var errStopScan = errors.New("stop scan")

// scanPoison calls fn with each batch of messages of poisonStream that sel
// chooses, and with the number of entries looked at so far. It reads only
// the entries that existed when it started. Missing IDs are added to
// *notFound when it is not nil.
func (a *Admin) scanPoison(ctx context.Context, poisonStream string, sel Selector, now time.Time, notFound *[]string, fn func(batch []PoisonedMessage, scanned int) error) error {
	if len(sel.IDs) > 0 {
		return a.scanPoisonIDs(ctx, poisonStream, sel, now, scan{}, notFound, fn)
	}
	return a.scanPoisonWith(ctx, poisonStream, sel, now, scan{}, fn)
}

// scanPoisonIDs reads the entries sel.IDs names, in ID order (from sc, only
// the payload counts).
func (a *Admin) scanPoisonIDs(ctx context.Context, poisonStream string, sel Selector, now time.Time, sc scan, notFound *[]string, fn func(batch []PoisonedMessage, scanned int) error) error {
	ids := slices.Clone(sel.IDs)
	slices.SortFunc(ids, compareIDs)
	ids = slices.Compact(ids)
	scanned := 0
	for chunk := range slices.Chunk(ids, a.config.BatchSize) {
		if err := ctx.Err(); err != nil {
			return err
		}
		pipe := a.client.Pipeline()
		cmds := make([]*redis.XMessageSliceCmd, len(chunk))
		for i, id := range chunk {
			cmds[i] = pipe.XRange(ctx, poisonStream, id, id)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
		}
		var batch []PoisonedMessage
		for i, cmd := range cmds {
			scanned++
			if len(cmd.Val()) == 0 {
				if notFound != nil {
					*notFound = append(*notFound, chunk[i])
				}
				continue
			}
			m := a.decodePoisoned(cmd.Val()[0], sc.payload)
			if sel.matches(&m, now) {
				batch = append(batch, m)
			}
		}
		if err := fn(batch, scanned); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

// scanPoisonWith reads poisonStream in order, from sc.from to the last entry
// present at the start (or the newest entry old enough for sel.OlderThan).
func (a *Admin) scanPoisonWith(ctx context.Context, poisonStream string, sel Selector, now time.Time, sc scan, fn func(batch []PoisonedMessage, scanned int) error) error {
	// The end is fixed now: a message poisoned again while a requeue runs
	// must not be requeued a second time by the same run.
	last, err := a.client.XRevRangeN(ctx, poisonStream, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
	}
	if len(last) == 0 {
		return nil
	}
	end := last[0].ID
	if sel.OlderThan > 0 {
		// Entry IDs grow with time, so the age filter is also a bound.
		cutoff := now.Add(-sel.OlderThan).UnixMilli()
		if cutoff < 0 {
			return nil
		}
		if bound := strconv.FormatInt(cutoff, 10) + "-18446744073709551615"; compareIDs(bound, end) < 0 {
			end = bound
		}
	}
	start := "-"
	if sc.from != "" {
		start = "(" + sc.from
	}
	scanned, matched := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := a.client.XRangeN(ctx, poisonStream, start, end, int64(a.config.BatchSize)).Result()
		if err != nil {
			return fmt.Errorf("redrive/admin: read poison stream %q: %w", poisonStream, err)
		}
		if len(entries) == 0 {
			return nil
		}
		var batch []PoisonedMessage
		for _, e := range entries {
			scanned++
			m := a.decodePoisoned(e, sc.payload)
			if !sel.matches(&m, now) {
				continue
			}
			batch = append(batch, m)
			matched++
			if sc.limit > 0 && matched == sc.limit {
				break
			}
		}
		if err := fn(batch, scanned); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
		if sc.limit > 0 && matched >= sc.limit {
			return nil
		}
		start = "(" + entries[len(entries)-1].ID
		if int64(len(entries)) < int64(a.config.BatchSize) {
			return nil
		}
	}
}

// compareIDs orders stream entry IDs.
func compareIDs(x, y string) int {
	xm, xs := splitID(x)
	ym, ys := splitID(y)
	switch {
	case xm != ym:
		if xm < ym {
			return -1
		}
		return 1
	case xs != ys:
		if xs < ys {
			return -1
		}
		return 1
	}
	return 0
}

func splitID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}
