package redrive

import "github.com/redrive-go/redrive/internal/wire"

// TopicKeys names every Redis key redrive uses for one topic. All of them hash
// to the same Redis Cluster slot as the topic's stream, so one Lua script or
// one XREADGROUP may touch any of them together.
//
// Layout, for a topic T with slot tag {t}:
//
//	T                          the stream (the topic itself, as in watermill-redisstream)
//	{t}:redrive:<T>:delayed    sorted set of messages waiting to enter T
//	{t}:redrive:<T>:poison     stream of entries the subscriber could not deliver
//	{t}:redrive:<T>:retry:<g>  stream of retries private to consumer group g
//	{t}:redrive:<T>:retry:<g>:delayed  sorted set of g's retries waiting for their due time
//	{t}:redrive:<T>:poison-topics  set of other poison topics holding messages of T
//	{t}:redrive:<T>:admin:<name>   short-lived markers of the admin's cross-slot requeues
//
// The tag {t} is the topic's own tag when it has one, "{T}" when T holds no
// '}', and otherwise a short tag found to hash to T's slot.
type TopicKeys struct {
	// Topic is the Watermill topic.
	Topic string
	// Stream is the stream key; it equals Topic.
	Stream string
	// Delayed is the sorted set of delayed messages for Stream.
	Delayed string
	// Poison is the stream where the subscriber moves entries it cannot
	// deliver (undecodable, or delivered too many times).
	Poison string

	prefix string
}

// KeysFor returns the key layout of topic.
func KeysFor(topic string) TopicKeys {
	prefix := wire.TopicPrefix(topic)
	return TopicKeys{
		Topic:   topic,
		Stream:  topic,
		Delayed: prefix + ":delayed",
		Poison:  prefix + ":poison",
		prefix:  prefix,
	}
}

// PoisonTopics is the set of the other poison topics (such as the retry
// middleware's PoisonTopic) that messages of this topic were poisoned into,
// kept so that admin.TopicInfo finds them.
func (k TopicKeys) PoisonTopics() string {
	return k.prefix + ":poison-topics"
}

// GroupRetry is the stream that holds retries of consumer group group: only
// that group reads it, so a retry never reaches another group.
func (k TopicKeys) GroupRetry(group string) string {
	return k.prefix + ":retry:" + group
}

// GroupRetryDelayed is the sorted set of group's retries waiting for their due
// time.
func (k TopicKeys) GroupRetryDelayed(group string) string {
	return k.GroupRetry(group) + ":delayed"
}
