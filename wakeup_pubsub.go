package redrive

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/errorbackoff"
	"github.com/redrive-go/redrive/internal/testsignal"
)

const (
	// wakeupPingInterval is how long the wake-up connection may stay silent
	// before it is pinged; a ping left unanswered for as long again means the
	// connection is dead, and it is replaced.
	wakeupPingInterval = time.Minute
	// wakeupRetryBackoff is the first pause after the wake-up connection
	// failed to reconnect; it doubles up to wakeupRetryBackoffMax.
	wakeupRetryBackoff    = 100 * time.Millisecond
	wakeupRetryBackoffMax = 5 * time.Second
	// wakeupCommandTimeout bounds the SUBSCRIBE, UNSUBSCRIBE and PING calls
	// on the wake-up connection.
	wakeupCommandTimeout = 5 * time.Second
)

// wakeupListener is a Subscriber's Pub/Sub connection: it is subscribed to
// the wake-up channel of each topic the Subscriber reads and hands the
// wake-ups it receives to this process's movers (processWakeups). Wake-ups
// sent while it was disconnected are lost, so each (re)subscription
// confirmed by Redis makes the movers of that topic poll at once. The
// Subscriber owns it: it connects at the first Subscribe and closes with the
// Subscriber.
type wakeupListener struct {
	client redis.UniversalClient
	logger watermill.LoggerAdapter

	mu     sync.Mutex
	pubsub *redis.PubSub
	// topics maps a wake-up channel to the delayed sets whose movers run in
	// this Subscriber, each with the number of subscriptions that run one.
	topics map[string]map[string]int
	closed bool
	// done closes with the listener; stopped when its loop ended.
	done    chan struct{}
	stopped chan struct{}

	TestSignals wakeupListenerTestSignals
}

type wakeupListenerTestSignals struct {
	// Subscribed carries the channel of each subscription Redis confirmed,
	// after the movers of its topic were told to poll.
	Subscribed testsignal.Signal[string]
	// Woken carries the delayed set of each due-time wake-up received, and
	// the whole message of each claim wake-up.
	Woken testsignal.Signal[string]
}

func newWakeupListener(client redis.UniversalClient, logger watermill.LoggerAdapter) *wakeupListener {
	return &wakeupListener{
		client: client,
		logger: logger.With(watermill.LogFields{"service": "wakeup_listener"}),
		topics: map[string]map[string]int{},
		done:   make(chan struct{}),
	}
}

// add subscribes to topic's wake-up channel for the movers of delayedKeys.
// A failure is only logged: the movers still poll every
// DelayedPollInterval, and go-redis subscribes again when it reconnects.
func (l *wakeupListener) add(topic string, delayedKeys []string) {
	channel := KeysFor(topic).wakeupChannel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	keys, known := l.topics[channel]
	if !known {
		keys = map[string]int{}
		l.topics[channel] = keys
	}
	for _, k := range delayedKeys {
		keys[k]++
	}
	if known {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wakeupCommandTimeout)
	defer cancel()
	if l.pubsub == nil {
		l.pubsub = l.client.Subscribe(ctx, channel)
		l.stopped = make(chan struct{})
		go l.run(l.pubsub)
		return
	}
	if err := l.pubsub.Subscribe(ctx, channel); err != nil {
		l.logger.Error("Could not subscribe to the wake-up channel; delayed messages of other processes wait for DelayedPollInterval until it reconnects", err, watermill.LogFields{"channel": channel})
	}
}

// remove is add undone, when a subscription ends.
func (l *wakeupListener) remove(topic string, delayedKeys []string) {
	channel := KeysFor(topic).wakeupChannel()
	l.mu.Lock()
	defer l.mu.Unlock()
	keys, known := l.topics[channel]
	if !known || l.closed {
		return
	}
	for _, k := range delayedKeys {
		if keys[k]--; keys[k] <= 0 {
			delete(keys, k)
		}
	}
	if len(keys) > 0 {
		return
	}
	delete(l.topics, channel)
	ctx, cancel := context.WithTimeout(context.Background(), wakeupCommandTimeout)
	defer cancel()
	if err := l.pubsub.Unsubscribe(ctx, channel); err != nil {
		l.logger.Debug("Could not unsubscribe from the wake-up channel", watermill.LogFields{"channel": channel, "err": err.Error()})
	}
}

// close closes the connection and waits for the receiving loop to end.
func (l *wakeupListener) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	ps, stopped := l.pubsub, l.stopped
	l.mu.Unlock()
	if ps == nil {
		return
	}
	_ = ps.Close()
	<-stopped
}

// run receives on ps until the listener closes. go-redis reconnects and
// subscribes again by itself after a connection error; a connection that
// answers nothing, not even a ping, is replaced.
func (l *wakeupListener) run(ps *redis.PubSub) {
	defer close(l.stopped)
	failures := newErrorLog(l.logger, "Receiving delayed-message wake-ups failed")
	pauses := errorbackoff.New(wakeupRetryBackoff, wakeupRetryBackoffMax)
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(context.Background(), wakeupPingInterval)
		if l.isClosed() {
			return
		}
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				if pinged {
					ps = l.replace(ps)
					pinged = false
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), wakeupCommandTimeout)
				pinged = ps.Ping(ctx) == nil
				cancel()
				continue
			}
			failures.failed(err)
			if !l.pause(pauses.Failed()) {
				return
			}
			continue
		}
		failures.succeeded()
		pauses.Succeeded()
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				l.pollTopic(m.Channel)
				l.TestSignals.Subscribed.Signal(m.Channel)
			}
		case *redis.Message:
			if group, isClaim := strings.CutPrefix(m.Payload, claimWakeupPrefix); isClaim {
				processClaimWakeups.notify(claimWakeupKey(m.Channel, group), time.Now())
				l.TestSignals.Woken.Signal(m.Payload)
			} else if key, due, ok := parseWakeupPayload(m.Payload); ok {
				processWakeups.notify(key, due)
				l.TestSignals.Woken.Signal(key)
			}
		}
	}
}

// pollTopic makes the movers of the delayed sets announced on channel poll
// now: wake-ups sent while this connection was not subscribed are lost.
func (l *wakeupListener) pollTopic(channel string) {
	l.mu.Lock()
	keys := make([]string, 0, len(l.topics[channel]))
	for k := range l.topics[channel] {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	now := time.Now()
	for _, k := range keys {
		processWakeups.notify(k, now)
	}
}

// replace closes ps, whose connection stopped answering, and subscribes to
// every channel again on a new one.
func (l *wakeupListener) replace(ps *redis.PubSub) *redis.PubSub {
	l.logger.Info("The wake-up connection stopped answering; reconnecting", nil)
	_ = ps.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ps
	}
	channels := make([]string, 0, len(l.topics))
	for ch := range l.topics {
		channels = append(channels, ch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wakeupCommandTimeout)
	defer cancel()
	l.pubsub = l.client.Subscribe(ctx, channels...)
	return l.pubsub
}

func (l *wakeupListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// pause waits d; false when the listener closed meanwhile.
func (l *wakeupListener) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// announceWakeup tells the movers of every process that a message of topic
// waits in delayedKey until due, on the topic's wake-up channel. A failure
// is only logged: the message is stored, and the movers' polls find it.
func announceWakeup(ctx context.Context, client redis.Cmdable, topic, delayedKey string, due time.Time) *redis.IntCmd {
	return client.Publish(ctx, KeysFor(topic).wakeupChannel(), wakeupPayload(delayedKey, due))
}

// announceClaim asks the claimers of group on topic, in every process, to
// claim now, on the topic's wake-up channel.
func announceClaim(ctx context.Context, client redis.Cmdable, topic, group string) *redis.IntCmd {
	return client.Publish(ctx, KeysFor(topic).wakeupChannel(), claimWakeupPayload(group))
}
