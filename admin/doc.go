// Package admin inspects and repairs redrive topics in Redis: what a topic
// holds (stream length, consumer groups, pending, lag, consumers, delayed
// messages, poisoned messages, what each group holds back from trimming),
// the poisoned messages themselves (list, show, requeue, purge), the delayed
// messages (list, run now), trimming a topic's stream (TrimTopic, the same
// group-aware rule as the Subscriber's trimmer) and deleting a consumer group
// that stopped for good (DeleteGroup). The redrive CLI
// (cmd/redrive) is a thin layer over it, so everything the CLI does a program
// can do too.
//
// # Requeuing
//
// A poisoned message goes back to its original topic (the topic_poisoned
// metadata). When the consumer group that failed on it is known, it goes to
// that group's private retry stream (redrive.KeysFor(topic).GroupRetry), so
// only that group sees it again; otherwise it goes to the topic's stream,
// where every group sees it. The group is taken from redrive_consumer_group
// (set by the Subscriber), else from handler_poisoned or subscriber_poisoned
// when that names a consumer group of the topic that reads its retry stream,
// that is one a redrive Subscriber created (the router wiring names each
// handler's group after the handler). A group of another adapter, such as
// watermill-redisstream during a migration, never reads a retry stream, so
// its messages go to the topic's stream.
//
// Before it is written back, the message's retry state is reset: the retry
// count, failure times, last error and the poison metadata are removed, the
// retry history (redrive_retry_history) is kept, and MetadataRequeuedAt and
// MetadataRequeueCount record the requeue. The retry policy therefore starts
// afresh, and the history still tells what happened before.
//
// Each message is moved atomically: on a single Redis server, or on a Redis
// Cluster when the poison stream and the target share a slot, one Lua script
// checks that the poison entry still exists, adds the message to the target
// and deletes the poison entry, so it is never in both places and never in
// neither. On a Cluster with the two in different slots no script can touch
// both; the message is then added to the target first, together with an
// idempotency marker in the target's slot, and deleted from the poison stream
// second. A crash between the steps leaves it briefly in both places, never
// in neither, and running the same requeue again finishes the job without a
// second copy (the marker lives for Config.RequeueMarkerTTL, a small key per
// message). The same marker keeps two operators requeuing the same entry at
// once from writing it twice. What remains is a requeue racing a purge of the
// same entry: the purged message may still be requeued.
//
// # Delayed messages
//
// RunDelayedNow moves delayed messages into their stream at once with a Lua
// script that removes each from its sorted set in the same step, rather than
// re-scoring them to "now": re-scoring would only take effect when a
// delayed-message mover next polls, and not at all when no Subscriber of the
// topic (or group) is running. The move and the movers exclude each other, so
// each message enters the stream exactly once.
//
// # Long operations
//
// Requeue, purge and run-now work in batches of Config.BatchSize messages per
// Redis round trip, report progress through a callback after each batch, and
// stop between batches when their context ends, returning what was done so
// far. They only look at entries that existed when they started, so a message
// that is poisoned again while a requeue runs is not requeued twice by it.
package admin
