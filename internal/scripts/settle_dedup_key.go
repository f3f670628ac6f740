package scripts

import (
	_ "embed"
	"errors"
	"fmt"
	"time"
)

//go:embed settle_dedup_key.lua
var settleDedupKeySource string

// SettleDedupKeyArgs are the arguments of settle_dedup_key.lua.
type SettleDedupKeyArgs struct {
	Key string
	// Token is the holder's token, from AcquireDedupKeyReply.
	Token   string
	Outcome DedupOutcome
}

// DedupOutcome is how a copy settles its deduplication key: DedupSucceeded,
// DedupFailed or DedupRefresh. Each carries the time to live it needs, and
// only that.
type DedupOutcome struct {
	name string
	ttl  time.Duration
}

// DedupSucceeded keeps the key, marked DedupDoneMarker, for window: copies
// arriving meanwhile are dropped.
func DedupSucceeded(window time.Duration) DedupOutcome {
	return DedupOutcome{name: "done", ttl: window}
}

// DedupFailed deletes the key, so the message's retry runs.
func DedupFailed() DedupOutcome { return DedupOutcome{name: "failed"} }

// DedupRefresh extends the lease to lease while the handler still runs.
func DedupRefresh(lease time.Duration) DedupOutcome {
	return DedupOutcome{name: "refresh", ttl: lease}
}

func (o DedupOutcome) String() string { return o.name }

// SettleDedupKey settles the deduplication key a copy holds. Its reply is
// true when settled, false when the key was no longer the copy's (nothing
// changed).
var SettleDedupKey = newScript("settle_dedup_key", settleDedupKeySource,
	func(a SettleDedupKeyArgs) ([]string, []interface{}, error) {
		if a.Token == "" {
			return nil, nil, errors.New("empty token")
		}
		argv := []interface{}{a.Token, a.Outcome.name}
		switch a.Outcome.name {
		case "failed":
		case "done", "refresh":
			if a.Outcome.ttl < time.Millisecond {
				return nil, nil, fmt.Errorf("outcome %s: time to live %s is under a millisecond", a.Outcome.name, a.Outcome.ttl)
			}
			argv = append(argv, millis(a.Outcome.ttl))
			if a.Outcome.name == "done" {
				argv = append(argv, DedupDoneMarker)
			}
		default:
			return nil, nil, errors.New("no outcome (use DedupSucceeded, DedupFailed or DedupRefresh)")
		}
		return []string{a.Key}, argv, nil
	},
	replyBool)
