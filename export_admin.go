package redrive

import "github.com/ThreeDotsLabs/watermill/message"

// This file exports, for the inspection and redrive tools in package admin,
// the few internals they must share with the Subscriber so that both read
// Redis the same way. Applications do not need them.

// DecodeDelayedMember parses a member of a delayed sorted set (a topic's
// Delayed set or a group's GroupRetryDelayed set); score is the member's
// score, its due time in Unix milliseconds.
func DecodeDelayedMember(member string, score float64) (DelayedEntry, error) {
	return decodeDelayedMember(member, score)
}

// EncodeDelayedMember builds the member a delayed set holds for a message
// with these stream entry fields, named id (see DecodeDelayedMember).
func EncodeDelayedMember(id string, fields map[string]interface{}) (string, error) {
	return encodeDelayedMemberWithID(id, fields)
}

// DecodeEntry turns the fields of a stream entry into a message exactly as
// the Subscriber does: an entry with a payload but no UUID gets id as its
// UUID, and a failing or panicking Unmarshaller gives an error.
func DecodeEntry(u Unmarshaller, id string, values map[string]interface{}) (*message.Message, error) {
	return decodeEntry(u, id, values)
}

// AdminKey returns a key in this topic's cluster slot, in redrive's own
// namespace, for bookkeeping by the admin tools (such as the markers that
// make a cross-slot requeue idempotent). name must be unique to its use.
func (k TopicKeys) AdminKey(name string) string {
	return k.prefix + ":admin:" + name
}
