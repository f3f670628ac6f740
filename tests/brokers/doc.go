// Package brokers tests redrive's retry middleware on the Watermill brokers
// this machine runs besides Redis: GoChannel, watermill-sql's delayed
// PostgreSQL Pub/Sub, watermill-nats JetStream (with and without
// TrackMsgId) and watermill-amqp on RabbitMQ. It is a module of its own so
// that these brokers' dependencies never enter redrive's go.mod.
//
// Services (a missing one fails the tests that need it, naming it):
// PostgreSQL at 127.0.0.1:5432 (database test, user postgres, trust auth),
// NATS with JetStream at 127.0.0.1:4222, RabbitMQ at 127.0.0.1:5672
// (guest/guest), Redis at $REDIS_ADDR (default 127.0.0.1:6379).
package brokers
