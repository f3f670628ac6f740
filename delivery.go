package redrive

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"github.com/redrive-go/redrive/internal/scripts"
)

// ErrNoConsumerGroup is returned by Delivery.Requeue for a message read by a
// fan-out subscriber: without a group there is no private retry stream.
var ErrNoConsumerGroup = errors.New("redrive: message was read without a consumer group")

type deliveryContextKey struct{}

// Delivery tells where a message read by a redrive Subscriber came from, and
// settles it atomically in Redis: Requeue schedules a retry and Poison moves
// it to a poison stream, each in the same step as its ack. The retry
// middleware uses it; applications rarely need it.
type Delivery struct {
	// Topic is the topic subscribed to.
	Topic string
	// Stream is the stream the entry was read from: the topic's stream, or the
	// group's private retry stream.
	Stream string
	// EntryID is the stream entry ID.
	EntryID string
	// ConsumerGroup is the group, empty for fan-out.
	ConsumerGroup string
	// Consumer is the consumer that read it.
	Consumer string

	entry   *pendingEntry
	settler *deliverySettler
	// msg is the message handed out, whose ack may come before its handler
	// fails (InstantAck).
	msg *message.Message
}

// ackedLocally tells the scripts to write although the entry may no longer
// be pending, because this consumer acked it itself. The message's own Acked
// channel is checked as well as the entry's flag: the subscriber sets the
// flag on its own goroutine, possibly after the handler already failed.
func (d *Delivery) ackedLocally() bool {
	if d.msg != nil {
		select {
		case <-d.msg.Acked():
			return true
		default:
		}
	}
	return d.entry.ackedLocally.Load()
}

// deliverySettler is what a Delivery needs to settle its entry in Redis,
// shared by the deliveries of one subscription.
type deliverySettler struct {
	Client redis.UniversalClient
	Topic  string
	Keys   TopicKeys
	groupStreams
	Marshaller Marshaller
	Poisoner   *poisoner
	Logger     watermill.LoggerAdapter
}

// pendingEntry is one stream entry held by a subscription, across
// redeliveries after nacks.
type pendingEntry struct {
	stream string
	id     string
	// settled is set once the entry was acked in Redis by Requeue or Poison,
	// so the subscriber's own ack is not needed.
	settled atomic.Bool
	// out is set while the message is out with a handler: an entry that is
	// not out can be given back to the group without running twice.
	out atomic.Bool
	// handedOut is the message last handed out for the entry. Only the
	// dispatcher writes it; shutdown reads it after the dispatcher ended.
	handedOut *message.Message
	// ackedLocally is set when the message was acked before its handler
	// finished (Watermill's InstantAck): a later Requeue or Poison must still
	// write, although the entry is no longer pending.
	ackedLocally atomic.Bool
}

// DeliveryOf returns the Delivery of a message read by a redrive Subscriber,
// found in the message's context.
func DeliveryOf(msg *message.Message) (*Delivery, bool) {
	d, ok := msg.Context().Value(deliveryContextKey{}).(*Delivery)
	return d, ok
}

// Requeue acks this delivery and schedules msg (with whatever metadata the
// caller set on it) to be delivered again at dueAt, to this consumer group
// only, in one atomic step. After it returns nil, acking or nacking the
// message changes nothing in Redis.
func (d *Delivery) Requeue(ctx context.Context, msg *message.Message, dueAt time.Time) error {
	s := d.settler
	if s.Group == "" {
		return ErrNoConsumerGroup
	}
	fields, err := s.Marshaller.Marshal(s.Topic, msg)
	if err != nil {
		return fmt.Errorf("redrive: requeue message %s: marshal: %w", msg.UUID, err)
	}
	_, member, err := encodeDelayedMember(fields)
	if err != nil {
		return fmt.Errorf("redrive: requeue message %s: %w", msg.UUID, err)
	}
	delayedKey := s.Keys.GroupRetryDelayed(s.Group)
	scheduled, err := scripts.ScheduleRetry.Run(ctx, s.Client, scripts.ScheduleRetryArgs{
		Stream: d.Stream, Delayed: delayedKey, Group: s.Group, EntryID: d.EntryID,
		DeleteEntry: s.deleteSettled(d.Stream), DueAt: dueAt, Member: member, AckedLocally: d.ackedLocally(),
	})
	if err != nil {
		return fmt.Errorf("redrive: requeue message %s from %q: %w", msg.UUID, d.Stream, err)
	}
	d.entry.settled.Store(true)
	if scheduled {
		processWakeups.notify(delayedKey, dueAt)
		if !processWakeups.listening(delayedKey) {
			// No mover of the group runs here (DisableDelayedMover): wake
			// those of other processes. A mover that runs here moves it, or
			// hands it over to them when it stops.
			if err := announceWakeup(ctx, s.Client, s.Topic, delayedKey, dueAt).Err(); err != nil {
				s.Logger.Debug("Could not announce a retry to other processes' movers; they find it at their next poll", watermill.LogFields{"err": err.Error()})
			}
		}
	} else {
		s.Logger.Info("Not requeued: the entry was already settled by another consumer", watermill.LogFields{"stream": d.Stream, "entry_id": d.EntryID})
	}
	return nil
}

// Poison acks this delivery and adds msg to the stream poisonTopic. Where
// both streams are in one Redis Cluster slot (or the client is not a cluster
// client) it is one atomic step; otherwise the poison entry is written first,
// so a crash in between can duplicate it but never lose it.
func (d *Delivery) Poison(ctx context.Context, msg *message.Message, poisonTopic string) error {
	s := d.settler
	fields, err := s.Marshaller.Marshal(poisonTopic, msg)
	if err != nil {
		return fmt.Errorf("redrive: poison message %s: marshal: %w", msg.UUID, err)
	}
	if err := s.Poisoner.writePoison(ctx, d.Stream, d.EntryID, d.ackedLocally(), poisonTopic, fields); err != nil {
		return fmt.Errorf("redrive: poison message %s: %w", msg.UUID, err)
	}
	d.entry.settled.Store(true)
	if keys := KeysFor(s.Topic); poisonTopic != keys.Poison {
		// Only a hint for admin.TopicInfo: the message is safe already.
		if err := s.Client.SAdd(ctx, keys.PoisonTopics(), poisonTopic).Err(); err != nil {
			s.Logger.Error("Could not note the poison topic for topic info", err, watermill.LogFields{"poison_topic": poisonTopic})
		}
	}
	return nil
}
