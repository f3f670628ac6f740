package redrive

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
)

// UUIDHeaderKey is the stream field that holds a message's UUID. It is
// watermill-redisstream's, so both adapters read each other's entries.
const UUIDHeaderKey = redisstream.UUIDHeaderKey

const (
	payloadField  = "payload"
	metadataField = "metadata"
)

// Marshaller turns a message into stream entry fields. It is
// watermill-redisstream's interface, so custom marshallers written for it
// work unchanged.
type Marshaller = redisstream.Marshaller

// Unmarshaller turns stream entry fields back into a message. It is
// watermill-redisstream's interface.
type Unmarshaller = redisstream.Unmarshaller

// MarshallerUnmarshaller does both.
type MarshallerUnmarshaller = redisstream.MarshallerUnmarshaller

// DefaultMarshallerUnmarshaller writes and reads watermill-redisstream's wire
// format: fields _watermill_message_uuid, payload and metadata (msgpack).
type DefaultMarshallerUnmarshaller = redisstream.DefaultMarshallerUnmarshaller

// errUndecodable marks an entry that no handler can ever process, so the
// subscriber moves it to the poison stream instead of retrying it.
var errUndecodable = errors.New("undecodable stream entry")

// decodeEntry turns a stream entry into a message. An entry with a payload but
// no UUID (a plain XADD from another language) gets the entry ID as UUID. Any
// failure, including a panic in a custom Unmarshaller, is returned as an error
// wrapping errUndecodable: a foreign entry must never stop a subscription.
func decodeEntry(u Unmarshaller, id string, values map[string]interface{}) (msg *message.Message, err error) {
	_, hasUUID := values[UUIDHeaderKey]
	if !hasUUID {
		if _, hasPayload := values[payloadField]; !hasPayload {
			return nil, fmt.Errorf("%w: entry %s has neither %s nor %s", errUndecodable, id, UUIDHeaderKey, payloadField)
		}
		withID := make(map[string]interface{}, len(values)+1)
		for k, v := range values {
			withID[k] = v
		}
		withID[UUIDHeaderKey] = id
		values = withID
	}
	for k, v := range values {
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("%w: entry %s: field %q is %T, not a string", errUndecodable, id, k, v)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("%w: entry %s: unmarshaller panicked: %v", errUndecodable, id, r)
		}
	}()
	msg, err = u.Unmarshal(values)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %s: %w", errUndecodable, id, err)
	}
	if msg == nil {
		return nil, fmt.Errorf("%w: entry %s: unmarshaller returned no message", errUndecodable, id)
	}
	return msg, nil
}
