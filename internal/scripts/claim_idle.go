package scripts

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed claim_idle.lua
var claimIdleSource string

// ClaimIdleArgs are the arguments of claim_idle.lua.
type ClaimIdleArgs struct {
	Stream string
	Group  string
	// Consumer takes the entries.
	Consumer string
	// MinIdle is how long an entry must have been idle to be claimed.
	MinIdle time.Duration
	// Count is the most pending entries looked at; at least 1.
	Count int64
	// MaxDeliveries leaves entries delivered this often or more unclaimed and
	// returns them in ClaimIdleReply.Exceeded; 0 means no limit.
	MaxDeliveries int64
}

// ClaimIdleReply is what claim_idle.lua did.
type ClaimIdleReply struct {
	// Claimed are the entries now owned by the consumer.
	Claimed []redis.XMessage
	// Exceeded are the idle entries delivered MaxDeliveries times or more,
	// left pending for the caller to poison.
	Exceeded []OverDelivered
	// Removed is how many pending entries were acked away because the entry
	// itself no longer exists (trimmed or deleted).
	Removed int64
}

// OverDelivered is an idle entry delivered too often to be claimed again.
type OverDelivered struct {
	ID         string
	Deliveries int64
	Values     map[string]interface{}
}

// ClaimIdle takes over entries another consumer of the group left pending
// longer than MinIdle.
var ClaimIdle = newScript("claim_idle", claimIdleSource,
	func(a ClaimIdleArgs) ([]string, []interface{}, error) {
		if a.Count < 1 {
			return nil, nil, fmt.Errorf("count %d, want at least 1", a.Count)
		}
		if a.MaxDeliveries < 0 {
			return nil, nil, fmt.Errorf("max deliveries %d is negative", a.MaxDeliveries)
		}
		return []string{a.Stream}, []interface{}{a.Group, a.Consumer, millis(a.MinIdle), a.Count, a.MaxDeliveries}, nil
	},
	parseClaimIdle)

func parseClaimIdle(v interface{}) (ClaimIdleReply, error) {
	parts, err := replyList(v, 3)
	if err != nil {
		return ClaimIdleReply{}, err
	}
	var r ClaimIdleReply
	if err := cmp.Or(
		replyPart("claimed", &r.Claimed, parts[0], replyArrayOf(replyEntry)),
		replyPart("exceeded", &r.Exceeded, parts[1], replyArrayOf(parseOverDelivered)),
		replyPart("removed", &r.Removed, parts[2], replyInt),
	); err != nil {
		return ClaimIdleReply{}, err
	}
	return r, nil
}

func parseOverDelivered(v interface{}) (OverDelivered, error) {
	parts, err := replyList(v, 3)
	if err != nil {
		return OverDelivered{}, err
	}
	var e OverDelivered
	if e.ID, err = replyString(parts[0]); err != nil {
		return OverDelivered{}, fmt.Errorf("entry ID: %w", err)
	}
	if e.Deliveries, err = replyInt(parts[1]); err != nil {
		return OverDelivered{}, fmt.Errorf("entry %s deliveries: %w", e.ID, err)
	}
	if e.Values, err = replyFields(parts[2]); err != nil {
		return OverDelivered{}, fmt.Errorf("entry %s: %w", e.ID, err)
	}
	if e.ID == "" {
		return OverDelivered{}, errors.New("empty entry ID")
	}
	return e, nil
}
