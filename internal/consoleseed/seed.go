// Package consoleseed fills Redis with topics that look like a real
// application's (consumer groups with and without consumers, pending
// entries, delayed messages, waiting retries, poisoned messages with their
// retry history, and hostile metadata), for the web console's tests,
// benchmarks and screenshots. All keys start with a prefix the caller picks,
// and Cleanup removes them.
package consoleseed

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/wire"
	"github.com/redrive-go/redrive/middleware"
)

// Hostile text that must show as text everywhere.
const (
	ScriptXSS = `<script>window.__redriveXSS=1</script>`
	ImgXSS    = `"><img src=x onerror="window.__redriveXSS=2">`
)

// Poison describes one poisoned message for AddPoison.
type Poison struct {
	Topic, Handler, Reason, LastError string
	// Group, when set, is the consumer group (as the Subscriber records it).
	Group    string
	Attempts int
	Payload  string
	// Extra metadata.
	Metadata map[string]string
	// FirstFailedAt is the first failure; attempts follow a minute apart.
	FirstFailedAt time.Time
}

var marshaller = redrive.DefaultMarshallerUnmarshaller{}

// PoisonFields builds the stream fields of a poisoned message, as the retry
// middleware writes it.
func PoisonFields(p Poison) (map[string]interface{}, string, error) {
	msg := message.NewMessage(watermill.NewUUID(), []byte(p.Payload))
	md := msg.Metadata
	for k, v := range p.Metadata {
		md.Set(k, v)
	}
	md.Set(wmiddleware.ReasonForPoisonedKey, p.Reason)
	md.Set(wmiddleware.PoisonedTopicKey, p.Topic)
	md.Set(wmiddleware.PoisonedHandlerKey, p.Handler)
	md.Set(wmiddleware.PoisonedSubscriberKey, "redrive.Subscriber")
	if p.Group != "" {
		md.Set(redrive.MetadataPoisonedConsumerGroup, p.Group)
	}
	if p.Attempts > 0 {
		first := p.FirstFailedAt
		if first.IsZero() {
			first = time.Now().Add(-time.Duration(p.Attempts+5) * time.Minute)
		}
		var history []middleware.Attempt
		for i := 1; i <= p.Attempts; i++ {
			a := middleware.Attempt{Number: i, FailedAt: first.Add(time.Duration(i-1) * time.Minute), Error: p.LastError}
			if i < p.Attempts {
				a.Delay = time.Duration(1<<(i-1)) * time.Second
			}
			history = append(history, a)
		}
		h, err := json.Marshal(history)
		if err != nil {
			return nil, "", err
		}
		md.Set(middleware.MetadataAttempts, strconv.Itoa(p.Attempts))
		md.Set(middleware.MetadataFirstFailedAt, first.UTC().Format(time.RFC3339Nano))
		md.Set(middleware.MetadataLastFailedAt, history[len(history)-1].FailedAt.UTC().Format(time.RFC3339Nano))
		md.Set(middleware.MetadataLastError, p.LastError)
		md.Set(middleware.MetadataHistory, string(h))
	}
	fields, err := marshaller.Marshal(p.Topic, msg)
	return fields, msg.UUID, err
}

// AddPoison writes a poisoned message to stream and returns its entry ID.
func AddPoison(ctx context.Context, client redis.UniversalClient, stream string, p Poison) (string, error) {
	fields, _, err := PoisonFields(p)
	if err != nil {
		return "", err
	}
	return client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: fields}).Result()
}

// Seeded names what Seed wrote.
type Seeded struct {
	Prefix string
	// Orders has two groups: billing (two consumers, pending entries,
	// waiting retries) and shipping (no consumer, lagging); delayed
	// messages; and poisoned messages, one of them hostile.
	Orders string
	// Payments is healthy; Emails has no group; DeadLetters is a poison
	// topic.
	Payments, Emails, DeadLetters string
	// HostileTopic has a hostile name and a consumer group named ScriptXSS.
	HostileTopic string
	// OrdersPoison is the poison stream of Orders, and OrdersPoisonIDs its
	// entries; HostileID is the one whose payload and metadata are hostile.
	OrdersPoison    string
	OrdersPoisonIDs []string
	// OrdersPoisonUUIDs are the message UUIDs of OrdersPoisonIDs.
	OrdersPoisonUUIDs []string
	HostileID         string
	// Keys are every key written, for Cleanup.
	Keys []string
}

// Seed writes the topics of Seeded under prefix.
func Seed(ctx context.Context, client redis.UniversalClient, prefix string) (Seeded, error) {
	s := Seeded{
		Prefix: prefix, Orders: prefix + "orders", Payments: prefix + "payments",
		Emails: prefix + "emails", DeadLetters: prefix + "dead-letters", HostileTopic: prefix + "zz" + ImgXSS,
	}
	ok := redrive.KeysFor(s.Orders)
	pk := redrive.KeysFor(s.Payments)
	s.OrdersPoison = ok.Poison
	s.Keys = []string{s.Orders, s.Payments, s.Emails, s.DeadLetters, ok.Poison, ok.Delayed,
		ok.GroupRetry("billing"), ok.GroupRetryDelayed("billing"), ok.GroupRetry("shipping"), ok.GroupRetryDelayed("shipping"),
		pk.GroupRetry("charge-card"), pk.GroupRetryDelayed("charge-card"), pk.Poison, pk.Delayed,
		s.HostileTopic, redrive.KeysFor(s.HostileTopic).GroupRetry(ScriptXSS)}

	for _, g := range []struct{ topic, group string }{{s.Orders, "billing"}, {s.Orders, "shipping"}, {s.Payments, "charge-card"}, {s.HostileTopic, ScriptXSS}} {
		for _, stream := range []string{g.topic, redrive.KeysFor(g.topic).GroupRetry(g.group)} {
			if err := client.XGroupCreateMkStream(ctx, stream, g.group, "0").Err(); err != nil {
				return s, fmt.Errorf("create group %s on %s: %w", g.group, stream, err)
			}
		}
	}
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		return s, err
	}
	defer pub.Close()
	publish := func(topic string, n int, payload func(i int) string) error {
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(payload(i)))
		}
		return pub.Publish(topic, msgs...)
	}
	if err := publish(s.Orders, 48, func(i int) string { return fmt.Sprintf(`{"order":%d,"total":%d.50}`, 1000+i, 20+i) }); err != nil {
		return s, err
	}
	if err := publish(s.Payments, 12, func(i int) string { return fmt.Sprintf(`{"payment":%d}`, i) }); err != nil {
		return s, err
	}
	if err := publish(s.HostileTopic, 1, func(int) string { return ScriptXSS }); err != nil {
		return s, err
	}
	if err := publish(s.Emails, 5, func(i int) string { return fmt.Sprintf(`{"to":"user%d@example.com"}`, i) }); err != nil {
		return s, err
	}
	// billing: two consumers read 30 and hold 6 of them; payments is caught up.
	for _, r := range []struct {
		topic, group, consumer string
		n                      int64
		ack                    bool
	}{
		{s.Orders, "billing", "billing-7f9c", 20, true}, {s.Orders, "billing", "billing-7f9c", 4, false},
		{s.Orders, "billing", "billing-31ad", 2, false}, {s.Payments, "charge-card", "charge-card-1", 12, true},
	} {
		res, err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.group, Consumer: r.consumer, Streams: []string{r.topic, ">"}, Count: r.n}).Result()
		if err != nil {
			return s, fmt.Errorf("read %s as %s: %w", r.topic, r.group, err)
		}
		if r.ack {
			for _, e := range res[0].Messages {
				client.XAck(ctx, r.topic, r.group, e.ID)
			}
		}
	}
	// Delayed messages of the topic.
	for i, d := range []time.Duration{3 * time.Minute, 40 * time.Minute, 6 * time.Hour} {
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"reminder":%d}`, i)))
		delay.Message(m, delay.For(d))
		if err := pub.Publish(s.Orders, m); err != nil {
			return s, err
		}
	}
	// Retries of billing waiting for their due time.
	for i, d := range []time.Duration{8 * time.Second, 50 * time.Second, 4 * time.Minute, 15 * time.Minute} {
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order":42}`))
		msg.Metadata.Set(middleware.MetadataAttempts, strconv.Itoa(i+1))
		msg.Metadata.Set(middleware.MetadataLastError, []string{
			"payment gateway timeout after 5s", "upstream 503 Service Unavailable",
			"context deadline exceeded", "connection reset by peer"}[i])
		fields, err := marshaller.Marshal(s.Orders, msg)
		if err != nil {
			return s, err
		}
		member, err := wire.EncodeDelayedMember(watermill.NewUUID(), fields)
		if err != nil {
			return s, err
		}
		due := float64(time.Now().Add(d).UnixMilli())
		if err := client.ZAdd(ctx, ok.GroupRetryDelayed("billing"), redis.Z{Score: due, Member: member}).Err(); err != nil {
			return s, err
		}
	}
	// Poisoned messages of orders.
	poisons := []Poison{
		{Handler: "billing", Group: "billing", Reason: "max retries exceeded", Attempts: 5, LastError: `card declined: insufficient funds (code 51)`, Payload: `{"order":1017,"card":"**** 4242"}`},
		{Handler: "billing", Group: "billing", Reason: "max retries exceeded", Attempts: 5, LastError: `payment gateway timeout after 5s`, Payload: `{"order":1023}`},
		{Handler: "shipping", Group: "shipping", Reason: "permanent error", Attempts: 1, LastError: `address validation: postcode "ZZ1" unknown`, Payload: `{"order":1031}`},
		{Handler: "billing", Group: "billing", Reason: "max retries exceeded", Attempts: 5, LastError: `upstream 503 Service Unavailable`, Payload: `{"order":1038}`},
		{Handler: "shipping", Group: "shipping", Reason: "max retries exceeded", Attempts: 5, LastError: `carrier API: rate limited`, Payload: `{"order":1040}`},
		{Handler: "billing", Group: "billing", Reason: "max retries exceeded " + ImgXSS, Attempts: 3, LastError: ScriptXSS,
			Payload: ScriptXSS + ImgXSS, Metadata: map[string]string{"note": ScriptXSS, "x" + ImgXSS: ImgXSS}},
	}
	for i, p := range poisons {
		p.Topic = s.Orders
		fields, uuid, err := PoisonFields(p)
		if err != nil {
			return s, err
		}
		id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: ok.Poison, Values: fields}).Result()
		if err != nil {
			return s, err
		}
		s.OrdersPoisonIDs = append(s.OrdersPoisonIDs, id)
		s.OrdersPoisonUUIDs = append(s.OrdersPoisonUUIDs, uuid)
		if i == len(poisons)-1 {
			s.HostileID = id
		}
	}
	for i := range 3 {
		if _, err := AddPoison(ctx, client, s.DeadLetters, Poison{Topic: s.Payments, Handler: "charge-card", Reason: "max retries exceeded",
			Attempts: 4, LastError: fmt.Sprintf("ledger write conflict #%d", i)}); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Cleanup deletes what Seed wrote.
func Cleanup(ctx context.Context, client redis.UniversalClient, s Seeded) {
	for _, k := range s.Keys {
		client.Del(ctx, k)
	}
}
