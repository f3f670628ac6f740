package redrive

// Metadata the subscriber adds to the entries it poisons, besides Watermill's
// PoisonQueue keys (reason_poisoned, topic_poisoned, handler_poisoned,
// subscriber_poisoned), which components/requeuer relies on.
const (
	// MetadataPoisonedSourceStream is the stream the entry was read from.
	MetadataPoisonedSourceStream = "redrive_source_stream"
	// MetadataPoisonedSourceID is the entry's ID in that stream.
	MetadataPoisonedSourceID = "redrive_source_id"
	// MetadataPoisonedAt is when it was poisoned (RFC 3339, UTC).
	MetadataPoisonedAt = "redrive_poisoned_at"
	// MetadataPoisonedConsumerGroup is the group that could not deliver it.
	MetadataPoisonedConsumerGroup = "redrive_consumer_group"

	// RawFieldsField holds, for an entry that could not be decoded, all its
	// original fields (msgpack map), next to a fresh, decodable message.
	RawFieldsField = "redrive_raw_fields"
)

// Reasons the subscriber gives in reason_poisoned (the text starts with one
// of them); MetadataPoisonReason holds PoisonReasonUndecodable or
// PoisonReasonCrashLoop.
const (
	ReasonUndecodable           = "undecodable entry"
	ReasonExceededMaxDeliveries = "exceeded max deliveries"
)
