package brokers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

const (
	postgresAddr = "127.0.0.1:5432"
	postgresDSN  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	natsAddr     = "127.0.0.1:4222"
	natsURL      = "nats://127.0.0.1:4222"
	rabbitAddr   = "127.0.0.1:5672"
	rabbitURI    = "amqp://guest:guest@127.0.0.1:5672/"
)

// broker is one Watermill Pub/Sub under test, set up for the retry
// middleware the way the README's broker table says.
type broker struct {
	name string
	// publisher publishes to the broker (tests, retries, poison).
	publisher message.Publisher
	// subscriber returns the subscriber of one handler: each handler gets
	// every message of a topic it reads, shared by its instances.
	subscriber func(handler string) message.Subscriber
	// queue: every topic is a queue whose messages go to one subscriber
	// only, so each handler reads a topic of its own.
	queue bool
	// retry is the broker's retry configuration (Publisher set, the rest
	// filled by the scenario).
	retry middleware.RetryConfig
	// retryTopics: published retries go to each handler's retry topic,
	// which AddRetryHandler subscribes.
	retryTopics bool
	// precision is how late the broker may deliver a due retry by design.
	precision time.Duration
	// forget deletes what the broker keeps for topics read by handlers
	// (streams, exchanges and queues, tables); nil when it keeps nothing.
	forget func(topics, handlers []string)
}

// forgetOnCleanup deletes, when the test ends (after everything registered
// later, such as the router, has stopped), what b keeps for topics and
// handlers, including their retry topics.
func forgetOnCleanup(t *testing.T, b broker, topics, handlers []string) {
	if b.forget == nil {
		return
	}
	all := append([]string(nil), topics...)
	for _, topic := range topics {
		for _, h := range handlers {
			all = append(all, middleware.RetryTopic(topic, h))
		}
	}
	t.Cleanup(func() { b.forget(all, handlers) })
}

// requireService fails the test when nothing listens at addr.
func requireService(t *testing.T, name, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (these tests need it running; CI starts it): %v", name, addr, err)
	}
	_ = conn.Close()
}

func closeOnCleanup(t *testing.T, c interface{ Close() error }) {
	t.Cleanup(func() { _ = c.Close() })
}

// newGoChannel is a GoChannel: no delays, so retries wait in process.
func newGoChannel(t *testing.T) broker {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, watermill.NopLogger{})
	closeOnCleanup(t, gc)
	return broker{
		name:       "gochannel",
		publisher:  gc,
		subscriber: func(string) message.Subscriber { return gc },
		retry:      middleware.RetryConfig{Publisher: gc},
	}
}

// newGoChannelDurable is a GoChannel whose retries wait in Redis.
func newGoChannelDurable(t *testing.T) broker {
	b := newGoChannel(t)
	b.name = "gochannel-durable"
	b.retry.Delay = middleware.DelayDurable
	b.retry.Durable = newDurable(t, b.publisher)
	b.retryTopics = true
	b.precision = middleware.DefaultDurablePollInterval
	return b
}

func newDurable(t *testing.T, pub message.Publisher) *middleware.DurableRetries {
	d, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{
		Client:    redistest.NewClient(t),
		Publisher: pub,
		Name:      redistest.RandomTopic("durable"),
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Close()
		c := redistest.NewClient(t)
		c.Del(context.Background(), d.Key())
	})
	return d
}

var (
	postgresOnce sync.Once
	postgresPool *pgxpool.Pool
	postgresDB   wmsql.Beginner
	postgresErr  error
)

// openPostgres returns one pgx pool for the whole test run (never closed:
// the process ends with the tests).
func openPostgres(t *testing.T) wmsql.Beginner {
	t.Helper()
	requireService(t, "PostgreSQL", postgresAddr)
	postgresOnce.Do(func() {
		pool, err := pgxpool.New(context.Background(), postgresDSN)
		if err == nil {
			err = pool.Ping(context.Background())
		}
		postgresPool, postgresDB, postgresErr = pool, wmsql.BeginnerFromPgx(pool), err
	})
	if postgresErr != nil {
		t.Fatalf("PostgreSQL at %s (database test, user postgres): %v", postgresAddr, postgresErr)
	}
	return postgresDB
}

// newPostgresDelayed is watermill-sql's delayed PostgreSQL Pub/Sub: a queue
// whose publisher honours delay metadata at whole-second precision.
func newPostgresDelayed(t *testing.T) broker {
	db := openPostgres(t)
	pub, err := wmsql.NewDelayedPostgreSQLPublisher(db, wmsql.DelayedPostgreSQLPublisherConfig{
		// Messages without a delay (the first publish, the poison topic).
		DelayPublisherConfig: delay.PublisherConfig{AllowNoDelay: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, pub)
	return broker{
		name:      "postgres-delayed",
		publisher: pub,
		subscriber: func(string) message.Subscriber {
			sub, err := wmsql.NewDelayedPostgreSQLSubscriber(db, wmsql.DelayedPostgreSQLSubscriberConfig{
				// Without DeleteOnAck an acked message without delay
				// metadata is read again: the subscriber's WHERE clause
				// "acked = false AND until < NOW() OR until IS NULL" binds
				// the OR last.
				DeleteOnAck:  true,
				AllowNoDelay: true,
				OverrideSubscriberConfig: func(c *wmsql.SubscriberConfig) error {
					c.PollInterval = 100 * time.Millisecond
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			closeOnCleanup(t, sub)
			return sub
		},
		queue: true,
		forget: func(topics, _ []string) {
			for _, topic := range topics {
				_, _ = postgresPool.Exec(context.Background(), `DROP TABLE IF EXISTS "watermill_`+topic+`"`)
			}
		},
		retry:       middleware.RetryConfig{Publisher: pub, Delay: middleware.DelayInPublisher, DelayPrecision: time.Second},
		retryTopics: true,
		precision:   time.Second + 100*time.Millisecond,
	}
}

// newNATS is watermill-nats on JetStream, each handler with its own durable
// and queue group. With durable set, retries wait in Redis and are
// published back through JetStream.
func newNATS(t *testing.T, trackMsgID, durable bool) broker {
	requireService(t, "NATS with JetStream", natsAddr)
	js := wmnats.JetStreamConfig{
		AutoProvision: true,
		TrackMsgId:    trackMsgID,
		SubscribeOptions: []nats.SubOpt{
			nats.DeliverAll(),
			nats.AckExplicit(),
		},
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: natsURL, JetStream: js}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("NATS at %s: %v", natsAddr, err)
	}
	closeOnCleanup(t, pub)
	b := broker{
		name:      fmt.Sprintf("nats-jetstream(TrackMsgId=%v)", trackMsgID),
		publisher: pub,
		subscriber: func(handler string) message.Subscriber {
			sjs := js
			sjs.DurablePrefix = handler
			sjs.DurableCalculator = func(prefix, topic string) string { return prefix + "_" + topic }
			sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
				URL:              natsURL,
				QueueGroupPrefix: handler,
				CloseTimeout:     5 * time.Second,
				AckWaitTimeout:   30 * time.Second,
				JetStream:        sjs,
			}, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			closeOnCleanup(t, sub)
			return sub
		},
		retry: middleware.RetryConfig{Publisher: pub},
		forget: func(topics, _ []string) {
			nc, err := nats.Connect(natsURL)
			if err != nil {
				return
			}
			defer nc.Close()
			js, err := nc.JetStream()
			if err != nil {
				return
			}
			for _, topic := range topics {
				_ = js.DeleteStream(topic)
			}
		},
	}
	if durable {
		b.name += "-durable"
		b.retry.Delay = middleware.DelayDurable
		b.retry.Durable = newDurable(t, pub)
		b.retryTopics = true
		b.precision = middleware.DefaultDurablePollInterval
	}
	return b
}

// newAMQP is watermill-amqp on RabbitMQ: a durable fan-out exchange per
// topic and a queue per handler.
func newAMQP(t *testing.T) broker {
	requireService(t, "RabbitMQ", rabbitAddr)
	pub, err := amqp.NewPublisher(amqp.NewDurablePubSubConfig(rabbitURI, nil), watermill.NopLogger{})
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v", rabbitAddr, err)
	}
	closeOnCleanup(t, pub)
	return broker{
		name:      "amqp",
		publisher: pub,
		subscriber: func(handler string) message.Subscriber {
			sub, err := amqp.NewSubscriber(amqp.NewDurablePubSubConfig(rabbitURI, amqp.GenerateQueueNameTopicNameWithSuffix(handler)), watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			closeOnCleanup(t, sub)
			return sub
		},
		retry: middleware.RetryConfig{Publisher: pub},
		forget: func(topics, handlers []string) {
			conn, err := amqp091.Dial(rabbitURI)
			if err != nil {
				return
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			defer ch.Close()
			for _, topic := range topics {
				for _, h := range handlers {
					_, _ = ch.QueueDelete(topic+"_"+h, false, false, false)
				}
				_ = ch.ExchangeDelete(topic, false, false)
			}
		},
	}
}

// newRedrive is redrive itself: each handler in its own consumer group.
func newRedrive(t *testing.T) broker {
	client := redistest.NewClient(t)
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, pub)
	return broker{
		name:      "redrive",
		publisher: pub,
		subscriber: func(handler string) message.Subscriber {
			return newRedriveSubscriber(t, client, handler)
		},
		retry:     middleware.RetryConfig{Publisher: pub},
		precision: 10 * time.Millisecond,
	}
}

func newRedriveSubscriber(t *testing.T, client redis.UniversalClient, group string) *redrive.Subscriber {
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client, ConsumerGroup: group, CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, sub)
	return sub
}

// randomName is a topic or handler name every broker accepts (no dots for
// NATS stream names, SQL's character set), short enough that a retry topic's
// table name stays within PostgreSQL's 63-byte identifiers.
func randomName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
