package redrive

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"
)

// NoSleep can be set to SubscriberConfig.NackResendSleep to redeliver a
// nacked message at once.
const NoSleep time.Duration = -1

// Subscriber defaults. Those shared with watermill-redisstream have its
// names; BlockTime and ClaimInterval are longer, so that an idle subscription
// costs Redis almost nothing.
const (
	// DefaultBlockTime is how long one read waits for new entries. A read
	// runs on a connection of the subscription's own, which Close closes, so
	// a long one costs Close nothing.
	DefaultBlockTime = 60 * time.Second
	// DefaultClaimInterval is how often a subscription looks for entries
	// that other consumers of its group left pending for MaxIdleTime (entries
	// given back are announced and claimed at once).
	DefaultClaimInterval          = 30 * time.Second
	DefaultClaimBatchSize         = int64(100)
	DefaultMaxIdleTime            = 60 * time.Second
	DefaultCheckConsumersInterval = 300 * time.Second
	DefaultConsumerTimeout        = 600 * time.Second

	// DefaultNackResendSleep spaces redeliveries of a nacked message. Other
	// messages keep flowing meanwhile.
	DefaultNackResendSleep = 100 * time.Millisecond
	// DefaultReadBatchSize is the COUNT of one XREADGROUP.
	DefaultReadBatchSize = int64(100)
	// DefaultMaxInFlight is how many messages of one subscription may be
	// delivered and not yet acked or nacked.
	DefaultMaxInFlight = 256
	// DefaultReadAhead is the most entries a subscription takes from its
	// group ahead of its handlers, when they take messages as fast as they
	// come.
	DefaultReadAhead = 128
	// DefaultAckBatchSize is the most acks sent in one XACK.
	DefaultAckBatchSize = 256
	// DefaultAckFlushInterval is how long an ack may wait for others to share
	// its round trip.
	DefaultAckFlushInterval = 2 * time.Millisecond
	// DefaultMaxDeliveries is how many times a message may be delivered
	// without being acked or nacked before it goes to the poison stream.
	DefaultMaxDeliveries = int64(10)
	// DefaultCloseTimeout is how long messages handed out before Close may go
	// on without any of them being acked or nacked, before their contexts are
	// cancelled.
	DefaultCloseTimeout = 10 * time.Second
	// DefaultDelayedPollInterval is how often the delayed-message movers
	// look for due messages by themselves: a safety net, since whoever
	// schedules a message wakes them (a Pub/Sub wake-up across processes).
	// It is the cost of an idle topic: one cheap script call per interval and
	// delayed set.
	DefaultDelayedPollInterval = 60 * time.Second
	// DefaultDelayedBatchSize is the most delayed messages moved per call.
	DefaultDelayedBatchSize = int64(500)
)

// SubscriberConfig configures a Subscriber. Fields shared with
// watermill-redisstream's SubscriberConfig have the same names and meanings.
type SubscriberConfig struct {
	// Client is the Redis client: *redis.Client, *redis.ClusterClient or a
	// Sentinel failover client. Required. Close never closes it.
	Client redis.UniversalClient

	// Unmarshaller turns stream entries into messages. Default:
	// DefaultMarshallerUnmarshaller.
	Unmarshaller Unmarshaller
	// Marshaller writes retries and poison entries. Default: Unmarshaller when
	// it is also a Marshaller, else DefaultMarshallerUnmarshaller.
	Marshaller Marshaller

	// Consumer names this subscriber in its consumer group. Default: a random
	// ID. A stable name lets a restarted process finish its own pending
	// entries at once instead of waiting for MaxIdleTime.
	Consumer string
	// ConsumerGroup is the consumer group. Empty means fan-out: every
	// subscriber receives every message, without acks or retries.
	ConsumerGroup string

	// NackResendSleep is the pause before a nacked message is delivered again.
	// Other messages keep flowing meanwhile. NoSleep redelivers at once.
	// Default DefaultNackResendSleep.
	NackResendSleep time.Duration
	// BlockTime is how long one read waits for new entries: one read per
	// BlockTime is what an idle subscription's reader costs, and a connection
	// that died silently is noticed within BlockTime plus 10 s. It does not
	// bound Close: the read runs on a connection of the subscription's own
	// (built from Client's options), and Close closes it. With a client other
	// than *redis.Client and *redis.ClusterClient, reads share Client and
	// block for at most 100 ms, which then bounds Close. Default
	// DefaultBlockTime.
	BlockTime time.Duration

	// ClaimInterval is how often pending entries of dead consumers are
	// looked for. Entries other consumers give back (when they close, or
	// when nobody takes them) are announced on the topic's wake-up channel
	// and claimed at once; the pass every ClaimInterval also takes those
	// whose announcement was lost. Default DefaultClaimInterval.
	ClaimInterval time.Duration
	// ClaimBatchSize is the most entries claimed per interval. Default
	// DefaultClaimBatchSize.
	ClaimBatchSize int64
	// MaxIdleTime is how long an entry stays pending with no sign of life
	// before another consumer claims it. A consumer refreshes its in-flight
	// entries every MaxIdleTime/3, so slow handlers keep their messages.
	// Default DefaultMaxIdleTime.
	MaxIdleTime time.Duration

	// CheckConsumersInterval is how often idle consumers are removed from the
	// group. Default DefaultCheckConsumersInterval.
	CheckConsumersInterval time.Duration
	// ConsumerTimeout is how long a consumer must be idle to be removed. A
	// consumer with pending entries is never removed. Default
	// DefaultConsumerTimeout.
	ConsumerTimeout time.Duration

	// OldestId is where a new consumer group starts: "0" for the first entry
	// of the stream, "$" for new entries only. Default "0".
	OldestId string //nolint:revive // watermill-redisstream's name
	// FanOutOldestId is where a fan-out subscriber starts. Default "$".
	FanOutOldestId string //nolint:revive // watermill-redisstream's name

	// ReadBatchSize is the most entries one read returns. Default
	// DefaultReadBatchSize.
	ReadBatchSize int64
	// MaxInFlight is how many messages of one subscription may be out, not yet
	// acked or nacked (read ahead included). 1 delivers strictly one at a time
	// in stream order (the next message only after the previous one is
	// acked). Default DefaultMaxInFlight: higher throughput, and with a Router
	// messages are handled concurrently, so order is not kept.
	MaxInFlight int
	// ReadAhead is the most entries a subscription takes from its group
	// before its handlers took the ones already read. Within it, the read-ahead
	// follows how fast the handlers actually take messages (about 10 ms of
	// their work), so a consumer whose handlers are slow holds almost nothing
	// that the group's other consumers could run. Entries that wait in a
	// consumer whose reader stopped taking messages go back to the group after
	// MaxIdleTime/2 (not with MaxInFlight 1, which keeps stream order).
	// Default DefaultReadAhead.
	ReadAhead int
	// AckBatchSize is the most acks sent in one round trip. Default
	// DefaultAckBatchSize.
	AckBatchSize int
	// AckFlushInterval is how long an ack may wait for others to share its
	// round trip. Close flushes waiting acks. Default DefaultAckFlushInterval.
	AckFlushInterval time.Duration

	// MaxDeliveries is how many times a message may be delivered without being
	// acked or nacked (its handler crashes the process) before it goes to the
	// poison stream with reason "exceeded max deliveries". -1 disables the
	// limit. Default DefaultMaxDeliveries.
	MaxDeliveries int64
	// PoisonTopic is the stream that receives entries this subscriber cannot
	// deliver. Default: the topic's own poison stream, KeysFor(topic).Poison.
	PoisonTopic string

	// CloseTimeout bounds how long messages handed out before Close may still
	// be acked or nacked after Close returned. Close itself does not wait for
	// them (a reader that stopped reading may never ack what it took); their
	// acks still reach Redis, and their contexts stay alive while handlers
	// keep settling messages: each ack or nack starts CloseTimeout again, so a
	// Router's handlers finishing one after another keep their time, and the
	// Router's own CloseTimeout bounds its shutdown. Once CloseTimeout passes
	// with none settled, the contexts of the rest are cancelled and they go
	// back to the group. The subscription's channel closes after that, once
	// the acks were sent. Default DefaultCloseTimeout.
	CloseTimeout time.Duration

	// DelayedPollInterval is the longest the delayed-message movers sleep.
	// They wake at the next due time they know of, and whenever a message is
	// scheduled earlier: by this process directly, by other processes through
	// the topic's wake-up channel (Redis Pub/Sub, one connection per
	// Subscriber), so it only bounds the lateness of a message whose wake-up
	// was lost. Default DefaultDelayedPollInterval.
	DelayedPollInterval time.Duration
	// DelayedBatchSize is the most delayed messages moved in one call. Default
	// DefaultDelayedBatchSize.
	DelayedBatchSize int64
	// DisableDelayedMover stops this subscriber from moving due delayed
	// messages into streams (another process must do it).
	DisableDelayedMover bool
	// DelayedMaxlen caps streams (XADD MAXLEN ~ n) when the mover adds
	// delayed messages to them. 0 means no cap. Like the Publisher's
	// Maxlens, the cap drops the oldest entries whether or not every
	// consumer group has read them; RetainAcked never does.
	DelayedMaxlen int64

	// RetainAcked is how long entries of the topic's stream that every
	// consumer group on it has read and acknowledged are kept before a
	// subscriber in a consumer group trims them (see Trimmer). An entry some
	// group still needs (unread, or pending) is never trimmed, however old;
	// a stream without consumer groups is never trimmed. Default
	// DefaultRetainAcked; DisableTrimming (or any negative value) keeps every
	// entry. Fan-out subscribers never trim.
	RetainAcked time.Duration
	// TrimInterval is how often the subscriber trims its topic's stream.
	// Default DefaultTrimInterval.
	TrimInterval time.Duration
	// OnTrim, when set, is called with the result of every trim of the
	// topic's stream. It runs on the trimmer's goroutine, so it must return
	// quickly. Metrics use it.
	OnTrim func(TrimResult)

	// OnClaim, when set, is called after this subscriber took over n entries
	// of topic that consumers of its group left pending for MaxIdleTime. It
	// runs on the claimer's goroutine, so it must return quickly. Metrics use
	// it.
	OnClaim func(topic string, n int)
	// OnCrashLoop, when set, is called after an entry of topic delivered
	// MaxDeliveries times without being acked or nacked was moved to the
	// poison stream. It runs on the claimer's goroutine (on the reader's for
	// this consumer's own entries, read back at Subscribe), so it must return
	// quickly. Metrics use it.
	OnCrashLoop func(topic, entryID string)
}

func (c *SubscriberConfig) setDefaults() {
	if c.Unmarshaller == nil {
		c.Unmarshaller = DefaultMarshallerUnmarshaller{}
	}
	if c.Marshaller == nil {
		if m, ok := c.Unmarshaller.(Marshaller); ok {
			c.Marshaller = m
		} else {
			c.Marshaller = DefaultMarshallerUnmarshaller{}
		}
	}
	if c.Consumer == "" {
		c.Consumer = watermill.NewShortUUID()
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = DefaultNackResendSleep
	}
	if c.BlockTime == 0 {
		c.BlockTime = DefaultBlockTime
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = DefaultClaimInterval
	}
	if c.ClaimBatchSize == 0 {
		c.ClaimBatchSize = DefaultClaimBatchSize
	}
	if c.MaxIdleTime == 0 {
		c.MaxIdleTime = DefaultMaxIdleTime
	}
	if c.CheckConsumersInterval == 0 {
		c.CheckConsumersInterval = DefaultCheckConsumersInterval
	}
	if c.ConsumerTimeout == 0 {
		c.ConsumerTimeout = DefaultConsumerTimeout
	}
	if c.OldestId == "" {
		c.OldestId = "0"
	}
	if c.FanOutOldestId == "" {
		c.FanOutOldestId = "$"
	}
	if c.ReadBatchSize == 0 {
		c.ReadBatchSize = DefaultReadBatchSize
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = DefaultReadAhead
	}
	if c.AckBatchSize == 0 {
		c.AckBatchSize = DefaultAckBatchSize
	}
	if c.AckFlushInterval == 0 {
		c.AckFlushInterval = DefaultAckFlushInterval
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.DelayedPollInterval == 0 {
		c.DelayedPollInterval = DefaultDelayedPollInterval
	}
	if c.DelayedBatchSize == 0 {
		c.DelayedBatchSize = DefaultDelayedBatchSize
	}
	if c.RetainAcked == 0 {
		c.RetainAcked = DefaultRetainAcked
	}
	if c.TrimInterval == 0 {
		c.TrimInterval = DefaultTrimInterval
	}
}

// Validate reports the first invalid field.
func (c *SubscriberConfig) Validate() error {
	if c.Client == nil {
		return errors.New("redrive: SubscriberConfig.Client is nil")
	}
	positive := []struct {
		name  string
		value time.Duration
	}{
		{"BlockTime", c.BlockTime},
		{"ClaimInterval", c.ClaimInterval},
		{"MaxIdleTime", c.MaxIdleTime},
		{"CheckConsumersInterval", c.CheckConsumersInterval},
		{"ConsumerTimeout", c.ConsumerTimeout},
		{"AckFlushInterval", c.AckFlushInterval},
		{"CloseTimeout", c.CloseTimeout},
		{"DelayedPollInterval", c.DelayedPollInterval},
		{"TrimInterval", c.TrimInterval},
	}
	for _, f := range positive {
		if f.value < 0 {
			return fmt.Errorf("redrive: SubscriberConfig.%s is %s, must be positive", f.name, f.value)
		}
	}
	if c.NackResendSleep < 0 && c.NackResendSleep != NoSleep {
		return fmt.Errorf("redrive: SubscriberConfig.NackResendSleep is %s, must be positive or NoSleep", c.NackResendSleep)
	}
	counts := []struct {
		name  string
		value int64
	}{
		{"ClaimBatchSize", c.ClaimBatchSize},
		{"ReadBatchSize", c.ReadBatchSize},
		{"MaxInFlight", int64(c.MaxInFlight)},
		{"ReadAhead", int64(c.ReadAhead)},
		{"AckBatchSize", int64(c.AckBatchSize)},
		{"DelayedBatchSize", c.DelayedBatchSize},
	}
	for _, f := range counts {
		if f.value < 1 {
			return fmt.Errorf("redrive: SubscriberConfig.%s is %d, must be at least 1", f.name, f.value)
		}
	}
	if c.MaxDeliveries < -1 {
		return fmt.Errorf("redrive: SubscriberConfig.MaxDeliveries is %d, must be at least 1, or -1 for no limit", c.MaxDeliveries)
	}
	if c.DelayedMaxlen < 0 {
		return fmt.Errorf("redrive: SubscriberConfig.DelayedMaxlen is %d, must be 0 (no cap) or more", c.DelayedMaxlen)
	}
	if !validStartID(c.OldestId) {
		return fmt.Errorf("redrive: SubscriberConfig.OldestId is %q, must be \"0\", \"$\" or a stream ID", c.OldestId)
	}
	if !validStartID(c.FanOutOldestId) {
		return fmt.Errorf("redrive: SubscriberConfig.FanOutOldestId is %q, must be \"0\", \"$\" or a stream ID", c.FanOutOldestId)
	}
	return nil
}

func validStartID(id string) bool {
	if id == "$" || id == "0" {
		return true
	}
	var ms, seq uint64
	if n, _ := fmt.Sscanf(id, "%d-%d", &ms, &seq); n == 2 {
		return true
	}
	n, _ := fmt.Sscanf(id, "%d", &ms)
	return n == 1
}

func (c *SubscriberConfig) maxDeliveries() int64 {
	if c.MaxDeliveries < 0 {
		return 0
	}
	return c.MaxDeliveries
}
