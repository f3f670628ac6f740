package scripts

import (
	_ "embed"
	"fmt"
	"time"
)

//go:embed claim_durable_retries.lua
var claimDurableRetriesSource string

// ClaimDurableRetriesArgs are the arguments of claim_durable_retries.lua.
type ClaimDurableRetriesArgs struct {
	// Key is the sorted set of retries, scored by due time in Unix
	// milliseconds.
	Key string
	// Now is the time retries are due at (the caller's clock: the one their
	// due times were set with).
	Now time.Time
	// Lease is how long a claimed retry is held before it is due again, in
	// whole milliseconds.
	Lease time.Duration
	// Limit is the most retries claimed in this call; at least 1.
	Limit int64
}

// ClaimDurableRetries claims the durable retries due at Now under a lease.
// Its reply is the claimed members.
var ClaimDurableRetries = newScript("claim_durable_retries", claimDurableRetriesSource,
	func(a ClaimDurableRetriesArgs) ([]string, []interface{}, error) {
		if a.Lease < 0 {
			return nil, nil, fmt.Errorf("lease %s is negative", a.Lease)
		}
		if a.Limit < 1 {
			return nil, nil, fmt.Errorf("limit %d, want at least 1", a.Limit)
		}
		return []string{a.Key}, []interface{}{a.Now.UnixMilli(), millis(a.Lease), a.Limit}, nil
	},
	replyStrings)
