package scripts

import (
	_ "embed"
	"errors"
)

//go:embed ack_delete.lua
var ackDeleteSource string

// AckDeleteArgs are the arguments of ack_delete.lua.
type AckDeleteArgs struct {
	// Stream is the consumer group's private retry stream.
	Stream string
	// Group is the consumer group.
	Group string
	// IDs are the entries to ack and delete; at least one.
	IDs []string
}

// AckDelete acks entries of a group's private retry stream and deletes them.
// Its reply is the number of entries acked.
var AckDelete = newScript("ack_delete", ackDeleteSource,
	func(a AckDeleteArgs) ([]string, []interface{}, error) {
		if len(a.IDs) == 0 {
			return nil, nil, errors.New("no entry IDs")
		}
		argv := make([]interface{}, 0, 1+len(a.IDs))
		argv = append(argv, a.Group)
		for _, id := range a.IDs {
			argv = append(argv, id)
		}
		return []string{a.Stream}, argv, nil
	},
	replyInt)
