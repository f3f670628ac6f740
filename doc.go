// Package redrive is a Watermill Pub/Sub over Redis Streams whose failed
// messages are retried durably, without blocking other messages, and land in
// a poison topic when their retries run out.
//
// [NewPublisher] and [NewSubscriber] give a [message.Publisher] and a
// [message.Subscriber] over any [redis.UniversalClient] (single node,
// Sentinel or Cluster). They are wire-compatible with watermill-redisstream,
// so both adapters can share a stream during a migration.
//
// Subscribers in a consumer group read in batches, ack in batches, claim the
// entries of consumers that died, and deliver Watermill's delayed messages
// (delay.Message, delay.NewPublisher) when they are due. The retry middleware
// in the middleware package schedules a failed message again with an
// exponential backoff through [DeliveryOf], in the same Redis script that
// acks the failed delivery, so a retry is never lost and never blocks the
// messages behind it.
//
// The router package wires a Watermill Router with one subscriber per handler
// and the retry policy; the admin package and the redrive command inspect,
// requeue and purge poisoned and delayed messages; the metrics package
// exports Prometheus metrics.
package redrive
