package redrive

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/redrive-go/redrive/internal/entryfields"
	"github.com/redrive-go/redrive/internal/redisinfo"
	"github.com/redrive-go/redrive/internal/scripts"
	"github.com/redrive-go/redrive/internal/wire"
)

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

// poisonMetadata is the metadata of an entry the subscriber poisons.
func (s *subscription) poisonMetadata(stream, id string, code PoisonReason, reason string) map[string]string {
	return map[string]string{
		middleware.ReasonForPoisonedKey:  reason,
		MetadataPoisonReason:             string(code),
		middleware.PoisonedTopicKey:      s.topic,
		middleware.PoisonedHandlerKey:    "",
		middleware.PoisonedSubscriberKey: s.group,
		MetadataPoisonedSourceStream:     stream,
		MetadataPoisonedSourceID:         id,
		MetadataPoisonedConsumerGroup:    s.group,
		MetadataPoisonedAt:               time.Now().UTC().Format(time.RFC3339Nano),
	}
}

// poisonEntryFields builds the poison entry for a stream entry: the decoded
// message with poison metadata when it decodes, else a fresh message that
// carries the original payload (when there is one) and every raw field.
func (s *subscription) poisonEntryFields(stream, id string, values map[string]interface{}, code PoisonReason, reason string) map[string]interface{} {
	md := s.poisonMetadata(stream, id, code, reason)
	if msg, err := wire.DecodeEntry(s.config().Unmarshaller, id, values); err == nil {
		for k, v := range md {
			msg.Metadata.Set(k, v)
		}
		if fields, err := s.config().Marshaller.Marshal(s.poisonTopic, msg); err == nil {
			return fields
		}
	}
	uuid, _ := values[UUIDHeaderKey].(string)
	if uuid == "" {
		uuid = id
	}
	payload, _ := values[wire.PayloadField].(string)
	encodedMD, _ := msgpack.Marshal(md)
	raw, _ := msgpack.Marshal(values)
	return map[string]interface{}{
		UUIDHeaderKey:      uuid,
		wire.PayloadField:  payload,
		wire.MetadataField: encodedMD,
		RawFieldsField:     raw,
	}
}

func (s *subscription) poisonUndecodable(stream string, entry redis.XMessage, cause error) {
	fields := watermill.LogFields{"stream": stream, "entry_id": entry.ID, "reason": cause.Error()}
	if s.group == "" {
		// A fan-out reader owns nothing and acks nothing: every other reader
		// sees the same entry, so it only skips it.
		s.logger.Error("Skipping an entry that cannot be decoded", cause, fields)
		return
	}
	s.logger.Error("Moving an entry that cannot be decoded to the poison stream", cause, fields)
	poison := s.poisonEntryFields(stream, entry.ID, entry.Values, PoisonReasonUndecodable, ReasonUndecodable+": "+cause.Error())
	if err := s.writePoison(s.ctx, stream, entry.ID, false, s.poisonTopic, poison); err != nil {
		// Still pending and not refreshed: after MaxIdleTime the claimer
		// takes it and poisons it again. Never lost.
		s.logger.Error("Could not poison the entry; it stays pending", err, fields)
	}
}

// writePoison adds fields to poisonStream and acks the entry. Where the two
// streams may be used in one script it is atomic; across cluster slots the
// poison entry is written first, so a crash duplicates rather than loses.
func (s *subscription) writePoison(ctx context.Context, stream, id string, ackedLocally bool, poisonStream string, fields map[string]interface{}) error {
	if s.group != "" && redisinfo.SameSlot(s.client, stream, poisonStream) {
		_, err := scripts.MoveToPoison.Run(ctx, s.client, scripts.MoveToPoisonArgs{
			Stream: stream, PoisonStream: poisonStream, Group: s.group, EntryID: id,
			DeleteEntry: s.deleteSettled(stream), AckedLocally: ackedLocally, Fields: fields,
		})
		if err != nil {
			return fmt.Errorf("move entry %s of %q to poison stream %q: %w", id, stream, poisonStream, err)
		}
		return nil
	}
	if err := s.client.XAdd(ctx, &redis.XAddArgs{Stream: poisonStream, Values: entryfields.AppendPairs(nil, fields)}).Err(); err != nil {
		return fmt.Errorf("add to poison stream %q: %w", poisonStream, err)
	}
	if s.group == "" {
		return nil // a fan-out reader has nothing to ack
	}
	if err := s.ack(ctx, s.client, stream, id).Err(); err != nil {
		return fmt.Errorf("ack poisoned entry %s of %q: %w", id, stream, err)
	}
	return nil
}

// overDelivered picks, from a read of this consumer's own pending entries
// (left by an earlier process with the same Consumer name), those already
// delivered MaxDeliveries times, with their delivery counts. The claimer
// guards the entries of other consumers; without this check a process that
// crashes on an entry and restarts under the same name would read it back
// forever. The read itself counted one more delivery, which is not made.
func (s *subscription) overDelivered(streams []redis.XStream) map[string]map[string]int64 {
	limit := s.config().maxDeliveries()
	if limit == 0 {
		return nil
	}
	over := map[string]map[string]int64{}
	for _, st := range streams {
		if len(st.Messages) == 0 {
			continue
		}
		pending, err := s.client.XPendingExt(s.ctx, &redis.XPendingExtArgs{
			Stream:   st.Stream,
			Group:    s.group,
			Start:    st.Messages[0].ID,
			End:      st.Messages[len(st.Messages)-1].ID,
			Count:    int64(len(st.Messages)),
			Consumer: s.config().Consumer,
		}).Result()
		if err != nil {
			// Delivering is the safe side: a crash brings the entries back, and
			// the check runs again.
			s.logger.Error("Could not read the delivery counts of own pending entries; delivering them", err,
				watermill.LogFields{"stream": st.Stream})
			continue
		}
		for _, p := range pending {
			if delivered := p.RetryCount - 1; delivered >= limit {
				if over[st.Stream] == nil {
					over[st.Stream] = map[string]int64{}
				}
				over[st.Stream][p.ID] = delivered
			}
		}
	}
	return over
}

// poisonOverDelivered moves an own pending entry delivered too many times to
// the poison stream. When that fails it stays pending, undelivered, and the
// claimer poisons it after MaxIdleTime.
func (s *subscription) poisonOverDelivered(stream string, entry redis.XMessage, delivered int64) {
	if len(entry.Values) == 0 {
		// Deleted meanwhile: nothing to keep, ack it away.
		s.acker.add(stream, entry.ID)
		return
	}
	if err := s.poisonCrashLoop(s.ctx, stream, entry.ID, entry.Values, delivered); err != nil {
		s.logger.Error("Could not poison an entry delivered too many times; it stays pending", err,
			watermill.LogFields{"stream": stream, "entry_id": entry.ID, "deliveries": delivered})
	}
}

// poisonCrashLoop moves an entry delivered MaxDeliveries times without being
// settled (its handler probably kills the process) to the poison stream, and
// tells OnCrashLoop. The claimer uses it for other consumers' entries, the
// reader for this consumer's own.
func (s *subscription) poisonCrashLoop(ctx context.Context, stream, id string, values map[string]interface{}, delivered int64) error {
	reason := fmt.Sprintf("%s (%d)", ReasonExceededMaxDeliveries, delivered)
	fields := s.poisonEntryFields(stream, id, values, PoisonReasonCrashLoop, reason)
	if err := s.writePoison(ctx, stream, id, false, s.poisonTopic, fields); err != nil {
		return err
	}
	s.logger.Error("Moved an entry delivered too many times to the poison stream", nil,
		watermill.LogFields{"stream": stream, "entry_id": id, "deliveries": delivered})
	if cb := s.config().OnCrashLoop; cb != nil {
		cb(s.topic, id)
	}
	return nil
}
