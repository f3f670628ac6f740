package wire

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Stream entry fields of watermill-redisstream's wire format, besides
// redisstream.UUIDHeaderKey.
const (
	PayloadField  = "payload"
	MetadataField = "metadata"
)

// ErrUndecodable marks an entry that no handler can ever process, so the
// subscriber moves it to the poison stream instead of retrying it.
var ErrUndecodable = errors.New("undecodable stream entry")

// DecodeEntry turns a stream entry into a message. An entry with a payload but
// no UUID (a plain XADD from another language) gets the entry ID as UUID. Any
// failure, including a panic in a custom Unmarshaller, is returned as an error
// wrapping ErrUndecodable: a foreign entry must never stop a subscription.
func DecodeEntry(u redisstream.Unmarshaller, id string, values map[string]interface{}) (msg *message.Message, err error) {
	_, hasUUID := values[redisstream.UUIDHeaderKey]
	if !hasUUID {
		if _, hasPayload := values[PayloadField]; !hasPayload {
			return nil, fmt.Errorf("%w: entry %s has neither %s nor %s", ErrUndecodable, id, redisstream.UUIDHeaderKey, PayloadField)
		}
		withID := make(map[string]interface{}, len(values)+1)
		for k, v := range values {
			withID[k] = v
		}
		withID[redisstream.UUIDHeaderKey] = id
		values = withID
	}
	for k, v := range values {
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("%w: entry %s: field %q is %T, not a string", ErrUndecodable, id, k, v)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("%w: entry %s: unmarshaller panicked: %v", ErrUndecodable, id, r)
		}
	}()
	msg, err = u.Unmarshal(values)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %s: %w", ErrUndecodable, id, err)
	}
	if msg == nil {
		return nil, fmt.Errorf("%w: entry %s: unmarshaller returned no message", ErrUndecodable, id)
	}
	return msg, nil
}
