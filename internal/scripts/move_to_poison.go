package scripts

import (
	_ "embed"
	"errors"

	"github.com/redrive-go/redrive/internal/entryfields"
)

//go:embed move_to_poison.lua
var moveToPoisonSource string

// MoveToPoisonArgs are the arguments of move_to_poison.lua. Stream and
// PoisonStream must be in one Redis Cluster slot.
type MoveToPoisonArgs struct {
	// Stream is where the delivery came from.
	Stream       string
	PoisonStream string
	Group        string
	EntryID      string
	// DeleteEntry deletes the entry from Stream after acking it (a group's
	// private retry stream, which nobody else reads).
	DeleteEntry bool
	// AckedLocally writes the poison entry even though the entry is no longer
	// pending, because this consumer acked it itself (InstantAck).
	AckedLocally bool
	// Fields are the poison entry's fields, written sorted by name.
	Fields map[string]interface{}
}

// MoveToPoisonReply is what move_to_poison.lua did.
type MoveToPoisonReply struct {
	// Written is false when the entry was no longer pending because another
	// consumer settled it: then nothing was written.
	Written bool
	// PoisonID is the poison entry's ID when Written.
	PoisonID string
}

// MoveToPoison acks a delivery and adds it to a poison stream, atomically.
var MoveToPoison = newScript("move_to_poison", moveToPoisonSource,
	func(a MoveToPoisonArgs) ([]string, []interface{}, error) {
		if len(a.Fields) == 0 {
			return nil, nil, errors.New("poison entry has no fields")
		}
		argv := []interface{}{a.Group, a.EntryID, flag(a.DeleteEntry), flag(a.AckedLocally)}
		return []string{a.Stream, a.PoisonStream}, entryfields.AppendPairs(argv, a.Fields), nil
	},
	func(v interface{}) (MoveToPoisonReply, error) {
		if v == nil {
			return MoveToPoisonReply{}, nil
		}
		id, err := replyString(v)
		return MoveToPoisonReply{Written: err == nil, PoisonID: id}, err
	})
