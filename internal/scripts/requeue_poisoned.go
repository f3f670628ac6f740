package scripts

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redrive-go/redrive/internal/entryfields"
)

//go:embed requeue_poisoned.lua
var requeuePoisonedSource string

// RequeuePoisonedArgs are the arguments of requeue_poisoned.lua. The poison
// stream and every target must be in one Redis Cluster slot.
type RequeuePoisonedArgs struct {
	PoisonStream string
	// Messages are moved in this order; at least one.
	Messages []PoisonedMessage
}

// PoisonedMessage is one poison entry to move back.
type PoisonedMessage struct {
	// PoisonID is its entry ID in the poison stream.
	PoisonID string
	// Target is the stream it goes to (a topic's stream, or a group's retry
	// stream).
	Target string
	// Fields are the entry to add to Target, written sorted by name.
	Fields map[string]interface{}
}

// RequeueOutcome is what happened to one message.
type RequeueOutcome struct {
	// NewID is the message's entry ID in its target when it was moved.
	NewID string
	// Gone is true when the poison entry no longer existed: nothing was
	// written.
	Gone bool
	// AddError is Redis's error when it refused the XADD (a target key of
	// another type, say): the poison entry stays.
	AddError string
}

// RequeuePoisoned moves poisoned messages back to their targets, each
// atomically. Its reply has one outcome per message, in order.
var RequeuePoisoned = newScriptForArgs("requeue_poisoned", requeuePoisonedSource,
	func(a RequeuePoisonedArgs) ([]string, []interface{}, error) {
		if len(a.Messages) == 0 {
			return nil, nil, errors.New("no messages")
		}
		keys := []string{a.PoisonStream}
		index := map[string]int{}
		var argv []interface{}
		for _, m := range a.Messages {
			if len(m.Fields) == 0 {
				return nil, nil, fmt.Errorf("message %s has no fields", m.PoisonID)
			}
			i, ok := index[m.Target]
			if !ok {
				keys = append(keys, m.Target)
				i = len(keys) // Lua counts from 1
				index[m.Target] = i
			}
			argv = append(argv, m.PoisonID, i, 2*len(m.Fields))
			argv = entryfields.AppendPairs(argv, m.Fields)
		}
		return keys, argv, nil
	},
	func(a RequeuePoisonedArgs, v interface{}) ([]RequeueOutcome, error) {
		return replyArray(v, len(a.Messages), parseRequeueOutcome)
	})

// parseRequeueOutcome reads the reply for one message: its new entry ID,
// "!" and the error of a refused XADD, or nil (false) when it was gone.
func parseRequeueOutcome(v interface{}) (RequeueOutcome, error) {
	if v == nil {
		return RequeueOutcome{Gone: true}, nil
	}
	id, err := replyString(v)
	if err != nil {
		return RequeueOutcome{}, err
	}
	if refused, ok := strings.CutPrefix(id, "!"); ok {
		return RequeueOutcome{AddError: refused}, nil
	}
	return RequeueOutcome{NewID: id}, nil
}
