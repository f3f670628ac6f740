// Package middleware holds redrive's retry middleware for Watermill routers,
// and what goes with it: durable retries for brokers without delays
// (DurableRetries), a Redis-backed Deduplicator that lets retries through,
// and the setup of Watermill's components/requeuer for redrive poison topics
// (NewRequeuer).
//
// On a handler error, Retry records the attempt in the message's metadata and
// retries it after an exponential backoff. After the last retry, after
// MaxElapsedTime, or for a permanent error, the message goes to a poison
// topic with Watermill's PoisonQueue metadata, where components/requeuer or
// redrive's tools can send it back.
//
// Where a retry waits depends on where the message came from. Read by a
// redrive Subscriber in a consumer group, it waits in that group's delayed
// set in Redis: acking the failed delivery and scheduling the retry happen in
// one Lua script, the handler returns at once, and the retry reaches only that
// group. Any other message (another broker, or a redrive fan-out subscriber)
// retries as RetryConfig.Delay says: in process by default (right on every
// broker), through a publisher that honours Watermill's delay metadata
// (DelayInPublisher), or held in Redis and published back through the
// broker's own publisher (DelayDurable). Published retries go to the failing
// handler's own retry topic (RetryTopic) under a new UUID, so they reach no
// other handler and brokers that drop repeated IDs accept them.
package middleware
