// Package middleware holds redrive's retry middleware for Watermill routers.
//
// On a handler error, Retry records the attempt in the message's metadata and
// schedules the message again after an exponential backoff, through a delayed
// set in Redis; the handler returns at once and other messages keep flowing.
// After the last retry, after MaxElapsedTime, or for a permanent error, the
// message goes to a poison topic with Watermill's PoisonQueue metadata, where
// components/requeuer or redrive's tools can send it back.
//
// With redrive's Subscriber, acking the failed delivery and scheduling the
// retry happen in one Lua script, and the retry reaches only the consumer group
// whose handler failed. With any other Watermill Pub/Sub whose publisher
// honours Watermill's delay metadata, the middleware publishes the retry with
// a delay and then acks.
package middleware
