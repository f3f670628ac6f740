package middleware

import (
	"fmt"
	"time"
)

// DelayMode says where a retry waits for its backoff when its message was not
// read by a redrive Subscriber in a consumer group. Messages a redrive
// Subscriber read in a group always wait in that group's delayed set in
// Redis and come back to that group only, whatever the mode.
type DelayMode int

const (
	// DelayInProcess (the default) waits in the handler, like Watermill's
	// Retry, then runs the handler again on the same message: right on every
	// broker, reaches only the handler that failed, but the handler reads
	// nothing else meanwhile (with a subscriber that delivers one message at
	// a time) and a process stop during the wait nacks the message, which
	// comes back with its retry count lost. The middleware logs this once per
	// handler. Messages of redrive fan-out subscribers (no consumer group)
	// always retry this way: publishing them would reach every instance.
	DelayInProcess DelayMode = iota
	// DelayInPublisher publishes the retry with Watermill's delay metadata
	// (_watermill_delayed_until, _watermill_delayed_for) through
	// RetryConfig.Publisher to the handler's retry topic (RetryTopic), and
	// acks. The publisher's broker must honour that metadata (watermill-sql's
	// delayed Pub/Sub, with DelayPublisherConfig.AllowNoDelay); due times are
	// rounded up to RetryConfig.DelayPrecision. The handler must also read its
	// retry topic: router.AddOtherBrokerHandler does it, or AddRetryHandler on
	// a message.Router.
	DelayInPublisher
	// DelayDurable holds the retry in Redis (RetryConfig.Durable, a
	// DurableRetries), which publishes it through the broker's own publisher
	// to the handler's retry topic when due, and acks. A restart loses none.
	// For brokers with no delays of their own (GoChannel across restarts is
	// the exception: it keeps nothing), when a Redis is at hand. The handler
	// must read its retry topic, as with DelayInPublisher.
	DelayDurable
)

// String names the mode as its constant does.
func (m DelayMode) String() string {
	switch m {
	case DelayInProcess:
		return "DelayInProcess"
	case DelayInPublisher:
		return "DelayInPublisher"
	case DelayDurable:
		return "DelayDurable"
	}
	return fmt.Sprintf("DelayMode(%d)", int(m))
}

// roundUp returns t rounded up to a multiple of precision, so a broker that
// keeps only that precision never delivers before t.
func roundUp(t time.Time, precision time.Duration) time.Time {
	if precision <= 0 {
		return t
	}
	r := t.Truncate(precision)
	if r.Before(t) {
		r = r.Add(precision)
	}
	return r
}
