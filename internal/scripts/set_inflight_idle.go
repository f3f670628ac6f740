package scripts

import (
	_ "embed"
	"errors"
	"fmt"
	"time"
)

//go:embed set_inflight_idle.lua
var setInflightIdleSource string

// SetInflightIdleArgs are the arguments of set_inflight_idle.lua.
type SetInflightIdleArgs struct {
	Stream   string
	Group    string
	Consumer string
	// Idle is the idle time to set: 0 keeps entries fresh, the claim idle
	// limit releases them to other consumers at once.
	Idle time.Duration
	// IDs are the entries the consumer holds; at least one.
	IDs []string
}

// SetInflightIdle sets the idle time of the entries a consumer still owns.
// Its reply is the IDs the consumer no longer owns (untouched).
var SetInflightIdle = newScript("set_inflight_idle", setInflightIdleSource,
	func(a SetInflightIdleArgs) ([]string, []interface{}, error) {
		if len(a.IDs) == 0 {
			return nil, nil, errors.New("no entry IDs")
		}
		if a.Idle < 0 {
			return nil, nil, fmt.Errorf("idle time %s is negative", a.Idle)
		}
		argv := make([]interface{}, 0, 3+len(a.IDs))
		argv = append(argv, a.Group, a.Consumer, millis(a.Idle))
		for _, id := range a.IDs {
			argv = append(argv, id)
		}
		return []string{a.Stream}, argv, nil
	},
	replyStrings)
