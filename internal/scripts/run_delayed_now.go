package scripts

import (
	_ "embed"
	"errors"
	"fmt"

	"github.com/redrive-go/redrive/internal/entryfields"
)

//go:embed run_delayed_now.lua
var runDelayedNowSource string

// RunDelayedNowArgs are the arguments of run_delayed_now.lua.
type RunDelayedNowArgs struct {
	// Delayed is the sorted set the messages wait in.
	Delayed string
	// Stream is where they go.
	Stream string
	// Messages are moved in this order; at least one.
	Messages []DelayedMessage
}

// DelayedMessage is one member of a delayed set to move now.
type DelayedMessage struct {
	// Member is the sorted-set member.
	Member string
	// Fields are the entry to add, written sorted by name.
	Fields map[string]interface{}
}

// RunDelayedNow moves delayed messages into their stream whatever their due
// time. Its reply has, for each message in order, its new entry ID, or ""
// when the member was no longer in the set (nothing written).
var RunDelayedNow = newScriptForArgs("run_delayed_now", runDelayedNowSource,
	func(a RunDelayedNowArgs) ([]string, []interface{}, error) {
		if len(a.Messages) == 0 {
			return nil, nil, errors.New("no messages")
		}
		var argv []interface{}
		for _, m := range a.Messages {
			if len(m.Fields) == 0 {
				return nil, nil, fmt.Errorf("member %q has no fields", m.Member)
			}
			argv = append(argv, m.Member, 2*len(m.Fields))
			argv = entryfields.AppendPairs(argv, m.Fields)
		}
		return []string{a.Delayed, a.Stream}, argv, nil
	},
	func(a RunDelayedNowArgs, v interface{}) ([]string, error) {
		return replyArray(v, len(a.Messages), replyStringOrNil)
	})
