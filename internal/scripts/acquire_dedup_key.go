package scripts

import (
	_ "embed"
	"errors"
	"fmt"
	"time"
)

//go:embed acquire_dedup_key.lua
var acquireDedupKeySource string

// DedupDoneMarker is the value of a deduplication key whose message was
// handled: copies that find it are dropped. Keys already in Redis hold it,
// so it never changes.
const DedupDoneMarker = "done"

// AcquireDedupKeyArgs are the arguments of acquire_dedup_key.lua.
type AcquireDedupKeyArgs struct {
	Key string
	// CopyID tells this copy of the message from the others; random.
	CopyID string
	// Attempts is this copy's failed attempts: a copy with more than the
	// holder's takes the key over.
	Attempts int
	// Lease is how long the key is held between refreshes; at least a
	// millisecond.
	Lease time.Duration
}

// DedupState is what AcquireDedupKey found.
type DedupState int

const (
	// DedupAcquired: this copy holds the key; run its handler.
	DedupAcquired DedupState = iota + 1
	// DedupDone: a copy was handled within the window; drop this one.
	DedupDone
	// DedupBusy: another copy is being handled now.
	DedupBusy
)

func (s DedupState) String() string {
	switch s {
	case DedupAcquired:
		return "acquired"
	case DedupDone:
		return "done"
	case DedupBusy:
		return "busy"
	}
	return fmt.Sprintf("DedupState(%d)", int(s))
}

// AcquireDedupKeyReply is what acquire_dedup_key.lua did.
type AcquireDedupKeyReply struct {
	State DedupState
	// Token is the holder's token when State is DedupAcquired: the copy
	// settles the key with it (SettleDedupKeyArgs.Token).
	Token string
}

// AcquireDedupKey takes a message's deduplication key for one copy before
// its handler runs.
var AcquireDedupKey = newScript("acquire_dedup_key", acquireDedupKeySource,
	func(a AcquireDedupKeyArgs) ([]string, []interface{}, error) {
		switch {
		case a.CopyID == "":
			return nil, nil, errors.New("empty copy ID")
		case a.Attempts < 0:
			return nil, nil, fmt.Errorf("attempts %d is negative", a.Attempts)
		case a.Lease < time.Millisecond:
			return nil, nil, fmt.Errorf("lease %s is under a millisecond", a.Lease)
		}
		return []string{a.Key}, []interface{}{a.CopyID, a.Attempts, millis(a.Lease), DedupDoneMarker}, nil
	},
	parseAcquireDedupKey)

func parseAcquireDedupKey(v interface{}) (AcquireDedupKeyReply, error) {
	parts, err := replyList(v, -1)
	if err != nil || len(parts) == 0 {
		return AcquireDedupKeyReply{}, fmt.Errorf("%v is not a state and a token", v)
	}
	state, err := replyString(parts[0])
	if err != nil {
		return AcquireDedupKeyReply{}, fmt.Errorf("state: %w", err)
	}
	switch {
	case state == "acquired" && len(parts) == 2:
		token, err := replyString(parts[1])
		if err != nil || token == "" {
			return AcquireDedupKeyReply{}, fmt.Errorf("token %v is not a string", parts[1])
		}
		return AcquireDedupKeyReply{State: DedupAcquired, Token: token}, nil
	case state == "done" && len(parts) == 1:
		return AcquireDedupKeyReply{State: DedupDone}, nil
	case state == "busy" && len(parts) == 1:
		return AcquireDedupKeyReply{State: DedupBusy}, nil
	}
	return AcquireDedupKeyReply{}, fmt.Errorf("%v is not {'acquired', token}, {'done'} or {'busy'}", v)
}
