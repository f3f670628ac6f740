package scripts

import (
	"cmp"
	_ "embed"
	"fmt"
	"time"
)

//go:embed trim_stream.lua
var trimStreamSource string

// TrimStreamArgs are the arguments of trim_stream.lua.
type TrimStreamArgs struct {
	Stream string
	// RetainAcked keeps entries younger than this even when every group is
	// done with them; not negative.
	RetainAcked time.Duration
	// Trim removes the entries; false only reports (a dry run).
	Trim bool
	// UnreadCountLimit is the most entries counted one by one as a group's
	// unread entries when the server gives no lag (Redis 6.2); at least 1.
	UnreadCountLimit int64
}

// TrimStreamReply is what trim_stream.lua found and did.
type TrimStreamReply struct {
	// Trimmed is how many entries were removed (0 in a dry run).
	Trimmed int64
	// MinID is the ID before which entries may go; "" when none may (no
	// stream, or no group).
	MinID string
	// Cutoff is the server's now minus RetainAcked, as an ID "<ms>-0".
	Cutoff string
	// Length is the number of entries left.
	Length int64
	// FirstID is the first entry left; "" when the stream is empty.
	FirstID string
	Groups  []TrimStreamGroup
}

// TrimStreamGroup is one consumer group as trim_stream.lua saw it.
type TrimStreamGroup struct {
	Name string
	// NeededFrom is the first entry ID the group still needs.
	NeededFrom string
	// Pending is the number of entries delivered and not yet acked.
	Pending int64
	// OldestPendingID is "" when none is pending.
	OldestPendingID string
	// Unread is the number of entries not yet delivered, -1 when not counted.
	Unread int64
	// UnreadExact is false when Unread was counted up to UnreadCountLimit and
	// stopped there (a lower bound).
	UnreadExact     bool
	LastDeliveredID string
	// HeldFrom is the oldest entry older than Cutoff kept for the group; ""
	// when it holds nothing back.
	HeldFrom string
}

// TrimStream removes the entries every consumer group is done with and that
// are older than RetainAcked, and reports what each group still needs.
var TrimStream = newScript("trim_stream", trimStreamSource,
	func(a TrimStreamArgs) ([]string, []interface{}, error) {
		if a.RetainAcked < 0 {
			return nil, nil, fmt.Errorf("retention %s is negative", a.RetainAcked)
		}
		if a.UnreadCountLimit < 1 {
			return nil, nil, fmt.Errorf("unread count limit %d, want at least 1", a.UnreadCountLimit)
		}
		return []string{a.Stream}, []interface{}{millis(a.RetainAcked), flag(a.Trim), a.UnreadCountLimit}, nil
	},
	parseTrimStream)

func parseTrimStream(v interface{}) (TrimStreamReply, error) {
	parts, err := replyList(v, 6)
	if err != nil {
		return TrimStreamReply{}, err
	}
	var r TrimStreamReply
	if err := cmp.Or(
		replyPart("trimmed", &r.Trimmed, parts[0], replyInt),
		replyPart("minid", &r.MinID, parts[1], replyString),
		replyPart("cutoff", &r.Cutoff, parts[2], replyString),
		replyPart("length", &r.Length, parts[3], replyInt),
		replyPart("first", &r.FirstID, parts[4], replyString),
		replyPart("groups", &r.Groups, parts[5], replyArrayOf(parseTrimStreamGroup)),
	); err != nil {
		return TrimStreamReply{}, err
	}
	return r, nil
}

func parseTrimStreamGroup(v interface{}) (TrimStreamGroup, error) {
	parts, err := replyList(v, 8)
	if err != nil {
		return TrimStreamGroup{}, err
	}
	var g TrimStreamGroup
	if err := cmp.Or(
		replyPart("name", &g.Name, parts[0], replyString),
		replyPart("needed", &g.NeededFrom, parts[1], replyString),
		replyPart("pending", &g.Pending, parts[2], replyInt),
		replyPart("oldest pending", &g.OldestPendingID, parts[3], replyString),
		replyPart("unread", &g.Unread, parts[4], replyInt),
		replyPart("unread exact", &g.UnreadExact, parts[5], replyBool),
		replyPart("last delivered", &g.LastDeliveredID, parts[6], replyString),
		replyPart("held", &g.HeldFrom, parts[7], replyString),
	); err != nil {
		return TrimStreamGroup{}, err
	}
	return g, nil
}
