package redrive

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redistest"
)

// The child process of TestDelayedWakeupFromAnotherProcess publishes one
// delayed message; these variables tell it where.
const (
	wakeupChildEnv      = "REDRIVE_WAKEUP_CHILD_TOPIC"
	wakeupChildAddrEnv  = "REDRIVE_WAKEUP_CHILD_ADDR"
	wakeupChildDelay    = time.Second
	wakeupTestPoll      = time.Hour // only a wake-up can deliver in time
	wakeupFunctionalCap = 30 * time.Second
)

// TestWakeupChildPublisher is not a test: it is the body of the helper
// process of TestDelayedWakeupFromAnotherProcess.
func TestWakeupChildPublisher(t *testing.T) {
	topic := os.Getenv(wakeupChildEnv)
	if topic == "" {
		t.Skip("helper process for TestDelayedWakeupFromAnotherProcess")
	}
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(wakeupChildAddrEnv)})
	defer client.Close()
	pub, err := NewPublisher(PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	msg := message.NewMessage(watermill.NewUUID(), []byte("from another process"))
	delay.Message(msg, delay.For(wakeupChildDelay))
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
}

// startIdleMover starts a mover on topic's delayed set that polls once an
// hour, and returns once it sleeps: after its first poll and the poll its
// wake-up subscription's confirmation asks for.
func startIdleMover(t *testing.T, client redis.UniversalClient, topic string) *DelayedMover {
	return startIdleMoverListening(t, client, topic, true)
}

// startIdleMoverListening is startIdleMover; without listen, the mover has
// no wake-up listener (it still hands over when it stops).
func startIdleMoverListening(t *testing.T, client redis.UniversalClient, topic string, listen bool) *DelayedMover {
	t.Helper()
	keys := KeysFor(topic)
	m, err := NewDelayedMover(DelayedMoverConfig{
		Client:       client,
		Topic:        topic,
		Delayed:      keys.Delayed,
		Stream:       keys.Stream,
		PollInterval: wakeupTestPoll,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.listensElsewhere = !listen
	m.testSignals.Polled.Init(t)
	m.testSignals.Moved.Init(t)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	polls := 1
	if listen {
		polls = 2
	}
	for i := range polls {
		if _, ok := m.testSignals.Polled.WaitOrTimeout(wakeupFunctionalCap); !ok {
			t.Fatalf("the mover did not poll (%d of %d)", i+1, polls)
		}
	}
	return m
}

// A delayed message published by another process reaches a mover that would
// otherwise sleep for an hour, through the topic's wake-up channel.
func TestDelayedWakeupFromAnotherProcess(t *testing.T) {
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("wakeup-xproc")
	keys := KeysFor(topic)
	t.Cleanup(func() { client.Del(context.Background(), keys.Stream, keys.Delayed) })
	m := startIdleMover(t, client, topic)

	cmd := exec.Command(os.Args[0], "-test.run=^TestWakeupChildPublisher$", "-test.count=1")
	cmd.Env = append(os.Environ(), wakeupChildEnv+"="+topic, wakeupChildAddrEnv+"="+client.Options().Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publisher process: %v\n%s", err, out)
	}
	moved, ok := m.testSignals.Moved.WaitOrTimeout(wakeupFunctionalCap)
	if !ok || moved != 1 {
		t.Fatalf("moved %d (signal %v), want the message of the other process moved on its wake-up", moved, ok)
	}
	if n := client.XLen(context.Background(), keys.Stream).Val(); n != 1 {
		t.Fatalf("stream holds %d entries, want 1", n)
	}
}

// Wake-ups sent while the wake-up connection is down are lost; when it
// subscribes again, the movers poll at once and find what was scheduled
// meanwhile.
func TestDelayedWakeupResubscribePolls(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	direct := srv.Client(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	topic := redistest.RandomTopic("wakeup-resubscribe")
	m := startIdleMover(t, client, topic)
	m.ownWakeups.TestSignals.Subscribed.Init(t)

	// Scheduled without a wake-up, as if it had been sent while the
	// connection was down.
	_, member, err := encodeDelayedMember(map[string]interface{}{"payload": "scheduled meanwhile"})
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.ZAdd(context.Background(), KeysFor(topic).Delayed, redis.Z{Score: float64(dueScore(time.Now())), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.CutAll()
	if _, ok := m.ownWakeups.TestSignals.Subscribed.WaitOrTimeout(wakeupFunctionalCap); !ok {
		t.Fatal("the wake-up connection did not subscribe again")
	}
	if moved, ok := m.testSignals.Moved.WaitOrTimeout(wakeupFunctionalCap); !ok || moved != 1 {
		t.Fatalf("moved %d (signal %v), want the message scheduled meanwhile moved after the resubscription", moved, ok)
	}
}

// A mover that stops while it knows of a waiting message announces it, so
// the mover of another process, asleep for an hour, moves it on time.
func TestDelayedMoverHandsOverWhenItStops(t *testing.T) {
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("wakeup-handover")
	keys := KeysFor(topic)
	t.Cleanup(func() { client.Del(context.Background(), keys.Stream, keys.Delayed) })
	stays := startIdleMover(t, client, topic)
	stays.ownWakeups.TestSignals.Woken.Init(t)

	// The stopping mover has no wake-up listener and finds the message at
	// its first poll: nothing tells the other one of it until it stops.
	_, member, err := encodeDelayedMember(map[string]interface{}{"payload": "handed over"})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.ZAdd(context.Background(), keys.Delayed, redis.Z{Score: float64(dueScore(time.Now().Add(time.Second))), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	leaves := startIdleMoverListening(t, client, topic, false)
	leaves.Stop()
	if _, ok := stays.ownWakeups.TestSignals.Woken.WaitOrTimeout(wakeupFunctionalCap); !ok {
		t.Fatal("no wake-up from the mover that stopped")
	}
	if moved, ok := stays.testSignals.Moved.WaitOrTimeout(wakeupFunctionalCap); !ok || moved != 1 {
		t.Fatalf("moved %d (signal %v), want the handed-over message moved", moved, ok)
	}
}

// A Subscriber's movers sleep on the hour-long safety net; a delayed
// message another process publishes reaches them through the Subscriber's
// wake-up connection, and is delivered.
func TestSubscriberDelayedWakeupFromAnotherProcess(t *testing.T) {
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("wakeup-xproc-sub")
	keys := KeysFor(topic)
	t.Cleanup(func() {
		client.Del(context.Background(), keys.Stream, keys.Delayed, keys.GroupRetry("g"), keys.GroupRetryDelayed("g"))
	})
	sub, err := NewSubscriber(SubscriberConfig{Client: client, ConsumerGroup: "g", DelayedPollInterval: wakeupTestPoll}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	sub.wakeups.TestSignals.Subscribed.Init(t)
	sub.wakeups.TestSignals.Woken.Init(t)
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sub.wakeups.TestSignals.Subscribed.WaitOrTimeout(wakeupFunctionalCap); !ok {
		t.Fatal("the wake-up connection did not subscribe")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestWakeupChildPublisher$", "-test.count=1")
	cmd.Env = append(os.Environ(), wakeupChildEnv+"="+topic, wakeupChildAddrEnv+"="+client.Options().Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publisher process: %v\n%s", err, out)
	}
	if key, ok := sub.wakeups.TestSignals.Woken.WaitOrTimeout(wakeupFunctionalCap); !ok || key != keys.Delayed {
		t.Fatalf("wake-up for %q (signal %v), want one for %q", key, ok, keys.Delayed)
	}
	select {
	case msg := <-msgs:
		msg.Ack()
		if string(msg.Payload) != "from another process" {
			t.Fatalf("got %q", msg.Payload)
		}
	case <-time.After(wakeupFunctionalCap):
		t.Fatal("the delayed message of the other process was not delivered")
	}
}

// A wake-up message carries the due time and the delayed set; anything else
// on the channel is ignored.
func TestWakeupPayloadRoundTrip(t *testing.T) {
	key := KeysFor("{orders}.a b").GroupRetryDelayed("g 1")
	due := time.UnixMilli(1_796_000_000_123)
	gotKey, gotDue, ok := parseWakeupPayload(wakeupPayload(key, due))
	if !ok || gotKey != key || !gotDue.Equal(due) {
		t.Fatalf("parsed %q %v %v, want %q %v", gotKey, gotDue, ok, key, due)
	}
	for _, bad := range []string{"", "123", "123 ", "x key", " key"} {
		if _, _, ok := parseWakeupPayload(bad); ok {
			t.Errorf("parseWakeupPayload(%q) accepted it", bad)
		}
	}
}
