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
	"github.com/redrive-go/redrive/internal/testsignal"
	"github.com/redrive-go/redrive/internal/wire"
)

// poisonerConfig is what the poisoner needs.
type poisonerConfig struct {
	Client redis.UniversalClient
	Topic  string
	// groupStreams is empty in fan-out: nothing is acked then.
	groupStreams
	Consumer string
	// PoisonTopic is where the subscriber's own poisoning writes.
	PoisonTopic string
	// MaxDeliveries is SubscriberConfig.maxDeliveries (0: no limit).
	MaxDeliveries int64
	Marshaller    Marshaller
	Unmarshaller  Unmarshaller
	// OnCrashLoop is SubscriberConfig's.
	OnCrashLoop func(topic, entryID string)
	Logger      watermill.LoggerAdapter
}

// poisoner moves entries of one subscription to a poison stream: those that
// cannot be decoded, those delivered MaxDeliveries times (found by the
// claimer in other consumers' pending lists, and by the reader in its own),
// and the messages Delivery.Poison is given.
type poisoner struct {
	config poisonerConfig

	TestSignals poisonerTestSignals
}

type poisonerTestSignals struct {
	// Poisoned carries the source entry ID of each entry the subscriber
	// poisoned itself (undecodable or crash loop).
	Poisoned testsignal.Signal[string]
}

// Init enables every signal for the test tb.
func (ts *poisonerTestSignals) Init(tb testsignal.TB) {
	ts.Poisoned.Init(tb)
}

func newPoisoner(config poisonerConfig) *poisoner { return &poisoner{config: config} }

// metadata is the metadata of an entry the subscriber poisons.
func (p *poisoner) metadata(stream, id string, code PoisonReason, reason string) map[string]string {
	return map[string]string{
		middleware.ReasonForPoisonedKey:  reason,
		MetadataPoisonReason:             string(code),
		middleware.PoisonedTopicKey:      p.config.Topic,
		middleware.PoisonedHandlerKey:    "",
		middleware.PoisonedSubscriberKey: p.config.Group,
		MetadataPoisonedSourceStream:     stream,
		MetadataPoisonedSourceID:         id,
		MetadataPoisonedConsumerGroup:    p.config.Group,
		MetadataPoisonedAt:               time.Now().UTC().Format(time.RFC3339Nano),
	}
}

// entryFields builds the poison entry for a stream entry: the decoded
// message with poison metadata when it decodes, else a fresh message that
// carries the original payload (when there is one) and every raw field.
func (p *poisoner) entryFields(stream, id string, values map[string]interface{}, code PoisonReason, reason string) map[string]interface{} {
	md := p.metadata(stream, id, code, reason)
	if msg, err := wire.DecodeEntry(p.config.Unmarshaller, id, values); err == nil {
		for k, v := range md {
			msg.Metadata.Set(k, v)
		}
		if fields, err := p.config.Marshaller.Marshal(p.config.PoisonTopic, msg); err == nil {
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

func (p *poisoner) poisonUndecodable(ctx context.Context, stream string, entry redis.XMessage, cause error) {
	fields := watermill.LogFields{"stream": stream, "entry_id": entry.ID, "reason": cause.Error()}
	if p.config.Group == "" {
		// A fan-out reader owns nothing and acks nothing: every other reader
		// sees the same entry, so it only skips it.
		p.config.Logger.Error("Skipping an entry that cannot be decoded", cause, fields)
		return
	}
	p.config.Logger.Error("Moving an entry that cannot be decoded to the poison stream", cause, fields)
	poison := p.entryFields(stream, entry.ID, entry.Values, PoisonReasonUndecodable, ReasonUndecodable+": "+cause.Error())
	if err := p.writePoison(ctx, stream, entry.ID, false, p.config.PoisonTopic, poison); err != nil {
		// Still pending and not refreshed: after MaxIdleTime the claimer
		// takes it and poisons it again. Never lost.
		p.config.Logger.Error("Could not poison the entry; it stays pending", err, fields)
		return
	}
	p.TestSignals.Poisoned.Signal(entry.ID)
}

// writePoison adds fields to poisonStream and acks the entry. Where the two
// streams may be used in one script it is atomic; across cluster slots the
// poison entry is written first, so a crash duplicates rather than loses.
func (p *poisoner) writePoison(ctx context.Context, stream, id string, ackedLocally bool, poisonStream string, fields map[string]interface{}) error {
	cfg := p.config
	if cfg.Group != "" && redisinfo.SameSlot(cfg.Client, stream, poisonStream) {
		_, err := scripts.MoveToPoison.Run(ctx, cfg.Client, scripts.MoveToPoisonArgs{
			Stream: stream, PoisonStream: poisonStream, Group: cfg.Group, EntryID: id,
			DeleteEntry: cfg.deleteSettled(stream), AckedLocally: ackedLocally, Fields: fields,
		})
		if err != nil {
			return fmt.Errorf("move entry %s of %q to poison stream %q: %w", id, stream, poisonStream, err)
		}
		return nil
	}
	if err := cfg.Client.XAdd(ctx, &redis.XAddArgs{Stream: poisonStream, Values: entryfields.AppendPairs(nil, fields)}).Err(); err != nil {
		return fmt.Errorf("add to poison stream %q: %w", poisonStream, err)
	}
	if cfg.Group == "" {
		return nil // a fan-out reader has nothing to ack
	}
	if err := cfg.ack(ctx, cfg.Client, stream, id).Err(); err != nil {
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
func (p *poisoner) overDelivered(ctx context.Context, streams []redis.XStream) map[string]map[string]int64 {
	limit := p.config.MaxDeliveries
	if limit == 0 {
		return nil
	}
	over := map[string]map[string]int64{}
	for _, st := range streams {
		if len(st.Messages) == 0 {
			continue
		}
		pending, err := p.config.Client.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream:   st.Stream,
			Group:    p.config.Group,
			Start:    st.Messages[0].ID,
			End:      st.Messages[len(st.Messages)-1].ID,
			Count:    int64(len(st.Messages)),
			Consumer: p.config.Consumer,
		}).Result()
		if err != nil {
			// Delivering is the safe side: a crash brings the entries back, and
			// the check runs again.
			p.config.Logger.Error("Could not read the delivery counts of own pending entries; delivering them", err,
				watermill.LogFields{"stream": st.Stream})
			continue
		}
		for _, pe := range pending {
			if delivered := pe.RetryCount - 1; delivered >= limit {
				if over[st.Stream] == nil {
					over[st.Stream] = map[string]int64{}
				}
				over[st.Stream][pe.ID] = delivered
			}
		}
	}
	return over
}

// poisonCrashLoop moves an entry delivered MaxDeliveries times without being
// settled (its handler probably kills the process) to the poison stream, and
// tells OnCrashLoop. The claimer uses it for other consumers' entries, the
// reader for this consumer's own.
func (p *poisoner) poisonCrashLoop(ctx context.Context, stream, id string, values map[string]interface{}, delivered int64) error {
	reason := fmt.Sprintf("%s (%d)", ReasonExceededMaxDeliveries, delivered)
	fields := p.entryFields(stream, id, values, PoisonReasonCrashLoop, reason)
	if err := p.writePoison(ctx, stream, id, false, p.config.PoisonTopic, fields); err != nil {
		return err
	}
	p.config.Logger.Error("Moved an entry delivered too many times to the poison stream", nil,
		watermill.LogFields{"stream": stream, "entry_id": id, "deliveries": delivered})
	if cb := p.config.OnCrashLoop; cb != nil {
		cb(p.config.Topic, id)
	}
	p.TestSignals.Poisoned.Signal(id)
	return nil
}
