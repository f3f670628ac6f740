package redrive

import "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"

// UUIDHeaderKey is the stream field that holds a message's UUID. It is
// watermill-redisstream's, so both adapters read each other's entries.
const UUIDHeaderKey = redisstream.UUIDHeaderKey

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
