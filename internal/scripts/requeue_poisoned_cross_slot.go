package scripts

import (
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redrive-go/redrive/internal/entryfields"
)

//go:embed requeue_poisoned_cross_slot.lua
var requeuePoisonedCrossSlotSource string

// RequeuePoisonedCrossSlotArgs are the arguments of
// requeue_poisoned_cross_slot.lua. Target and Marker must be in one Redis
// Cluster slot; the poison stream is not touched.
type RequeuePoisonedCrossSlotArgs struct {
	// Target is the stream the message goes to.
	Target string
	// Marker is the key, in Target's slot, that records the entry added for
	// one poison entry (named after the poison stream and entry ID).
	Marker string
	// MarkerTTL is how long the marker lives; at least a millisecond.
	MarkerTTL time.Duration
	// Fields are the entry to add, written sorted by name.
	Fields map[string]interface{}
}

// RequeuePoisonedCrossSlot adds a poisoned message to its target unless an
// earlier requeue of the same poison entry did; the caller then deletes the
// poison entry. Its reply is the entry's ID in the target.
var RequeuePoisonedCrossSlot = newScript("requeue_poisoned_cross_slot", requeuePoisonedCrossSlotSource,
	func(a RequeuePoisonedCrossSlotArgs) ([]string, []interface{}, error) {
		if a.MarkerTTL < time.Millisecond {
			return nil, nil, fmt.Errorf("marker lifetime %s is under a millisecond", a.MarkerTTL)
		}
		if len(a.Fields) == 0 {
			return nil, nil, errors.New("entry has no fields")
		}
		argv := entryfields.AppendPairs([]interface{}{millis(a.MarkerTTL)}, a.Fields)
		return []string{a.Target, a.Marker}, argv, nil
	},
	replyString)
