package tests

// Delayed messages through redrive: Watermill's components/delay and
// middleware.DelayOnError honoured on Redis, messages held in the topic's
// delayed set until due, many movers (in this process and in others) moving
// each message exactly once, and restarts losing nothing.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/components/requeuer"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/internal/testsignal"
)

// delayedWait bounds every wait of these tests: far above what any step
// needs, so only a real failure reaches it.
const delayedWait = 30 * time.Second

// delayedArrival is a message as the subscriber handed it out, and when.
type delayedArrival struct {
	msg *message.Message
	at  time.Time
}

func delayedNewPublisher(t *testing.T, client redis.UniversalClient) *redrive.Publisher {
	t.Helper()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

// delayedSubscribe reads topic in a consumer group of its own and reports
// every message, acked at once, with the time it was handed out.
func delayedSubscribe(t *testing.T, client redis.UniversalClient, topic string) <-chan delayedArrival {
	t.Helper()
	sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{
		Client:        client,
		ConsumerGroup: "delayed-test",
	}, nil)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		t.Fatalf("Subscribe %q: %v", topic, err)
	}
	out := make(chan delayedArrival, 4096)
	go func() {
		defer close(out)
		for msg := range msgs {
			at := time.Now()
			msg.Ack()
			out <- delayedArrival{msg: msg, at: at}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = sub.Close()
	})
	return out
}

// delayedNext returns the next arrival, failing the test after delayedWait.
func delayedNext(t *testing.T, arrivals <-chan delayedArrival, what string) delayedArrival {
	t.Helper()
	select {
	case a, ok := <-arrivals:
		if !ok {
			t.Fatalf("subscription closed while waiting for %s", what)
		}
		return a
	case <-time.After(delayedWait):
		t.Fatalf("timed out after %v waiting for %s", delayedWait, what)
	}
	panic("unreachable")
}

// delayedAssertNotEarly checks an arrival against the due time intended at
// publish time and against the message's own _watermill_delayed_until, both
// at millisecond precision (the delayed set's scores are milliseconds).
func delayedAssertNotEarly(t *testing.T, a delayedArrival, intendedDue time.Time) {
	t.Helper()
	if a.at.UnixMilli() < intendedDue.UnixMilli() {
		t.Errorf("message %s arrived %v early: at %s, due %s",
			a.msg.UUID, intendedDue.Sub(a.at), a.at.Format(time.RFC3339Nano), intendedDue.Format(time.RFC3339Nano))
	}
	untilText := a.msg.Metadata.Get(delay.DelayedUntilKey)
	if untilText == "" {
		return
	}
	until, err := time.Parse(time.RFC3339Nano, untilText)
	if err != nil {
		t.Errorf("message %s: bad %s %q: %v", a.msg.UUID, delay.DelayedUntilKey, untilText, err)
		return
	}
	if a.at.UnixMilli() < until.UnixMilli() {
		t.Errorf("message %s arrived before its %s: at %s, until %s",
			a.msg.UUID, delay.DelayedUntilKey, a.at.Format(time.RFC3339Nano), untilText)
	}
}

// delayedSnapshot reads the delayed set's size and the stream's length in
// one MULTI, so the two counts describe one moment.
func delayedSnapshot(t *testing.T, client redis.UniversalClient, keys redrive.TopicKeys) (zcard, xlen int64) {
	t.Helper()
	ctx := context.Background()
	var zc *redis.IntCmd
	var xl *redis.IntCmd
	_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		zc = p.ZCard(ctx, keys.Delayed)
		xl = p.XLen(ctx, keys.Stream)
		return nil
	})
	if err != nil && err != redis.Nil {
		t.Fatalf("snapshot of %q and %q: %v", keys.Delayed, keys.Stream, err)
	}
	return zc.Val(), xl.Val()
}

// delayedAssertHeld checks that messages not yet due at the time of a
// snapshot are in the delayed set and not in the stream. dues are the
// intended due times of every message published to the topic so far. The
// check is sound on any machine: whatever became due before the snapshot may
// or may not have moved, what did not cannot have.
func delayedAssertHeld(t *testing.T, client redis.UniversalClient, keys redrive.TopicKeys, dues []time.Time) {
	t.Helper()
	zcard, xlen := delayedSnapshot(t, client, keys)
	after := time.Now()
	var notDue int64
	for _, due := range dues {
		if due.UnixMilli() > after.UnixMilli() {
			notDue++
		}
	}
	if zcard+xlen != int64(len(dues)) {
		t.Errorf("delayed set holds %d and stream %d: want %d in all", zcard, xlen, len(dues))
	}
	if zcard < notDue {
		t.Errorf("delayed set %q holds %d messages (stream %d), but %d are not due yet", keys.Delayed, zcard, xlen, notDue)
	}
	if notDue == 0 {
		t.Logf("all %d messages were due before the check ran (slow machine): the held-check is vacuous", len(dues))
	}
}

func TestDelayedForArrivesAfterTheDelay(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-for-")
	keys := redrive.KeysFor(topic)
	pub := delayedNewPublisher(t, client)
	arrivals := delayedSubscribe(t, client, topic)

	delays := []time.Duration{
		250 * time.Millisecond, 600 * time.Millisecond, 999 * time.Millisecond,
		1001 * time.Millisecond, 1300 * time.Millisecond, 1750 * time.Millisecond,
	}
	due := map[string]time.Time{}
	var dues []time.Time
	for i, d := range delays {
		msg := message.NewMessage(watermill.NewUUID(), []byte("for-"+strconv.Itoa(i)))
		stamped := time.Now()
		delay.Message(msg, delay.For(d))
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		due[msg.UUID] = stamped.Add(d)
		dues = append(dues, stamped.Add(d))
	}
	delayedAssertHeld(t, client, keys, dues)

	var maxLate time.Duration
	for range delays {
		a := delayedNext(t, arrivals, "a message delayed with delay.For")
		want, ok := due[a.msg.UUID]
		if !ok {
			t.Fatalf("unexpected message %s", a.msg.UUID)
		}
		delete(due, a.msg.UUID)
		delayedAssertNotEarly(t, a, want)
		maxLate = max(maxLate, a.at.Sub(want))
	}
	t.Logf("latest arrival: %v after due (informational)", maxLate)
	if zcard, _ := delayedSnapshot(t, client, keys); zcard != 0 {
		t.Errorf("delayed set still holds %d messages after all arrived", zcard)
	}
}

func TestDelayedUntilArrivesAtTheTime(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-until-")
	keys := redrive.KeysFor(topic)
	pub := delayedNewPublisher(t, client)
	arrivals := delayedSubscribe(t, client, topic)

	now := time.Now()
	untils := []time.Time{
		now.Add(700 * time.Millisecond),                // fractional seconds
		now.Truncate(time.Second).Add(2 * time.Second), // a whole second
		now.Add(1234567 * time.Microsecond),
	}
	due := map[string]time.Time{}
	for i, until := range untils {
		msg := message.NewMessage(watermill.NewUUID(), []byte("until-"+strconv.Itoa(i)))
		delay.Message(msg, delay.Until(until))
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		due[msg.UUID] = until
	}
	delayedAssertHeld(t, client, keys, untils)
	for range untils {
		a := delayedNext(t, arrivals, "a message delayed with delay.Until")
		want, ok := due[a.msg.UUID]
		if !ok {
			t.Fatalf("unexpected message %s", a.msg.UUID)
		}
		delete(due, a.msg.UUID)
		delayedAssertNotEarly(t, a, want)
	}
}

// A message published a few milliseconds after delay.For(d), when the
// stamped due time falls just before a whole second: delay.Message writes
// _watermill_delayed_until truncated to that second, and the publisher must
// still hold the message d after the stamp, not release it at the truncated
// second.
func TestDelayedForPublishedJustAfterStampAcrossASecond(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-edge-")
	pub := delayedNewPublisher(t, client)
	arrivals := delayedSubscribe(t, client, topic)

	const d = 1500 * time.Millisecond
	const n = 3
	due := map[string]time.Time{}
	for i := range n {
		msg := message.NewMessage(watermill.NewUUID(), []byte("edge-"+strconv.Itoa(i)))
		// Setup, not an assertion: wait until now+d is 5-20 ms before a
		// whole second, stamp, then publish as soon as now+d has crossed it.
		var stamped time.Time
		for {
			ms := time.Now().Add(d).Nanosecond() / int(time.Millisecond)
			if ms >= 980 && ms < 995 {
				stamped = time.Now()
				delay.Message(msg, delay.For(d))
				break
			}
			time.Sleep(time.Millisecond)
		}
		for time.Now().Add(d).Truncate(time.Second).Equal(stamped.Add(d).Truncate(time.Second)) {
			time.Sleep(time.Millisecond)
		}
		gap := time.Since(stamped)
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		t.Logf("message %d published %v after delay.For(%v)", i, gap.Round(time.Millisecond), d)
		due[msg.UUID] = stamped.Add(d)
	}
	for range n {
		a := delayedNext(t, arrivals, "a message delayed with delay.For")
		want, ok := due[a.msg.UUID]
		if !ok {
			t.Fatalf("unexpected message %s", a.msg.UUID)
		}
		delayedAssertNotEarly(t, a, want)
	}
}

func TestDelayedNewPublisherWithContext(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-pub-")
	keys := redrive.KeysFor(topic)
	inner := delayedNewPublisher(t, client)
	arrivals := delayedSubscribe(t, client, topic)

	// Closing the delay publisher would close inner; inner's own Cleanup
	// closes it once.
	delayPub, err := delay.NewPublisher(inner, delay.PublisherConfig{
		DefaultDelayGenerator: func(delay.DefaultDelayGeneratorParams) (delay.Delay, error) {
			return delay.For(900 * time.Millisecond), nil
		},
	})
	if err != nil {
		t.Fatalf("delay.NewPublisher: %v", err)
	}

	due := map[string]time.Time{}
	var dues []time.Time

	// Delay from the context.
	for i, d := range []time.Duration{400 * time.Millisecond, 1200 * time.Millisecond} {
		msg := message.NewMessage(watermill.NewUUID(), []byte("ctx-"+strconv.Itoa(i)))
		stamped := time.Now()
		msg.SetContext(delay.WithContext(context.Background(), delay.For(d)))
		if err := delayPub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish with delay.WithContext: %v", err)
		}
		due[msg.UUID] = stamped.Add(d)
		dues = append(dues, stamped.Add(d))
	}
	// Until from the context.
	{
		until := time.Now().Add(1100 * time.Millisecond)
		msg := message.NewMessage(watermill.NewUUID(), []byte("ctx-until"))
		msg.SetContext(delay.WithContext(context.Background(), delay.Until(until)))
		if err := delayPub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish with delay.WithContext(Until): %v", err)
		}
		due[msg.UUID] = until
		dues = append(dues, until)
	}
	// No delay given: the publisher's default generator applies.
	{
		msg := message.NewMessage(watermill.NewUUID(), []byte("default"))
		stamped := time.Now()
		if err := delayPub.Publish(topic, msg); err != nil {
			t.Fatalf("Publish with the default delay: %v", err)
		}
		due[msg.UUID] = stamped.Add(900 * time.Millisecond)
		dues = append(dues, stamped.Add(900*time.Millisecond))
	}
	delayedAssertHeld(t, client, keys, dues)

	for range dues {
		a := delayedNext(t, arrivals, "a message published through delay.NewPublisher")
		want, ok := due[a.msg.UUID]
		if !ok {
			t.Fatalf("unexpected message %s", a.msg.UUID)
		}
		delete(due, a.msg.UUID)
		delayedAssertNotEarly(t, a, want)
	}
}

// Watermill's DelayOnError works with PoisonQueue: the failed message goes
// to the poison topic with delay metadata, and a requeuer reading the poison
// topic sends it back to its topic. Through redrive the poison topic's
// subscriber sees it only after the delay, and the requeued message is
// handled.
func TestDelayedDelayOnErrorThroughPoisonQueueAndRequeuer(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-doe-")
	poisonTopic := redistest.RandomTopic("delayed-doe-poison-")
	poisonKeys := redrive.KeysFor(poisonTopic)
	pub := delayedNewPublisher(t, client)
	logger := watermill.NopLogger{}

	const interval = time.Second
	newSub := func(group string) *redrive.Subscriber {
		sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, nil)
		if err != nil {
			t.Fatalf("NewSubscriber: %v", err)
		}
		return sub
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	poisonQueue, err := wmiddleware.PoisonQueue(pub, poisonTopic)
	if err != nil {
		t.Fatalf("PoisonQueue: %v", err)
	}
	// PoisonQueue outermost, so DelayOnError has set the delay metadata by
	// the time PoisonQueue publishes the failed message.
	router.AddMiddleware(poisonQueue, (&wmiddleware.DelayOnError{
		InitialInterval: interval,
		MaxInterval:     10 * interval,
		Multiplier:      2,
	}).Middleware)

	type attempt struct {
		at  time.Time
		msg *message.Message
	}
	attempts := make(chan attempt, 10)
	var calls atomic.Int32
	router.AddConsumerHandler("doe", topic, newSub("doe"), func(msg *message.Message) error {
		n := calls.Add(1)
		attempts <- attempt{at: time.Now(), msg: msg.Copy()}
		if n == 1 {
			return fmt.Errorf("first attempt fails")
		}
		return nil
	})

	// The requeuer runs on a router of its own, where a middleware records
	// when the poison topic's subscriber hands the message out.
	requeueRouter, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, logger)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	poisonArrivals := make(chan delayedArrival, 10)
	requeueRouter.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			poisonArrivals <- delayedArrival{msg: msg.Copy(), at: time.Now()}
			return h(msg)
		}
	})
	rq, err := requeuer.NewRequeuer(requeuer.Config{
		Subscriber:     newSub("requeuer"),
		SubscribeTopic: poisonTopic,
		Publisher:      pub,
		GeneratePublishTopic: func(p requeuer.GeneratePublishTopicParams) (string, error) {
			return p.Message.Metadata.Get(wmiddleware.PoisonedTopicKey), nil
		},
		Router: requeueRouter,
	}, logger)
	if err != nil {
		t.Fatalf("NewRequeuer: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var runs sync.WaitGroup
	runs.Add(2)
	go func() { defer runs.Done(); _ = router.Run(ctx) }()
	go func() { defer runs.Done(); _ = rq.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = router.Close()
		_ = requeueRouter.Close()
		runs.Wait()
	})
	<-router.Running()
	<-requeueRouter.Running()

	msg := message.NewMessage(watermill.NewUUID(), []byte("delay-on-error"))
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	var first attempt
	select {
	case first = <-attempts:
	case <-time.After(delayedWait):
		t.Fatal("the handler never got the message")
	}
	// DelayOnError stamps the delay after the handler returned, so the
	// message cannot be due before first.at+interval.
	intendedDue := first.at.Add(interval)

	// Held in the poison topic's delayed set meanwhile: wait until the
	// poisoned copy is there (or, on a very slow machine, already arrived).
	held := false
	redistest.WaitFor(t, delayedWait, func() bool {
		zcard, xlen := delayedSnapshot(t, client, poisonKeys)
		if zcard == 1 && xlen == 0 {
			held = true
			return true
		}
		return len(poisonArrivals) > 0
	}, "the poisoned message in %q", poisonKeys.Delayed)
	if !held {
		t.Logf("the poisoned message arrived before the held-check could see it (slow machine)")
	}

	var poisoned delayedArrival
	select {
	case poisoned = <-poisonArrivals:
	case <-time.After(delayedWait):
		t.Fatal("the poisoned message never reached the poison topic's subscriber")
	}
	if poisoned.msg.UUID != msg.UUID {
		t.Fatalf("poison topic got %s, want %s", poisoned.msg.UUID, msg.UUID)
	}
	delayedAssertNotEarly(t, poisoned, intendedDue)
	if got := poisoned.msg.Metadata.Get(delay.DelayedForKey); got != interval.String() {
		t.Errorf("%s = %q, want %q", delay.DelayedForKey, got, interval.String())
	}
	if got := poisoned.msg.Metadata.Get(wmiddleware.PoisonedTopicKey); got != topic {
		t.Errorf("%s = %q, want %q", wmiddleware.PoisonedTopicKey, got, topic)
	}
	if got := poisoned.msg.Metadata.Get(wmiddleware.ReasonForPoisonedKey); !strings.Contains(got, "first attempt fails") {
		t.Errorf("%s = %q, want the handler's error", wmiddleware.ReasonForPoisonedKey, got)
	}

	var second attempt
	select {
	case second = <-attempts:
	case <-time.After(delayedWait):
		t.Fatal("the requeued message never came back to the handler")
	}
	if second.msg.UUID != msg.UUID || string(second.msg.Payload) != "delay-on-error" {
		t.Errorf("requeued message is %s %q, want %s %q", second.msg.UUID, second.msg.Payload, msg.UUID, "delay-on-error")
	}
	if second.at.UnixMilli() < intendedDue.UnixMilli() {
		t.Errorf("requeued message handled %v before its delay was over", intendedDue.Sub(second.at))
	}
	if got := second.msg.Metadata.Get(requeuer.RetriesKey); got != "1" {
		t.Errorf("%s = %q, want 1", requeuer.RetriesKey, got)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want 2", n)
	}
}

// --- Many movers, in this process and in others ---

// delayedChildEnv selects the helper process role of TestDelayedMoverChildProcess.
const (
	delayedChildEnv        = "REDRIVE_TEST_DELAYED_CHILD"
	delayedChildAddrEnv    = "REDRIVE_TEST_DELAYED_ADDR"
	delayedChildSetEnv     = "REDRIVE_TEST_DELAYED_SET"
	delayedChildStreamEnv  = "REDRIVE_TEST_DELAYED_STREAM"
	delayedChildBatchEnv   = "REDRIVE_TEST_DELAYED_BATCH"
	delayedChildReadyLine  = "REDRIVE-DELAYED-CHILD READY"
	delayedChildMovedLine  = "REDRIVE-DELAYED-CHILD MOVED "
	delayedMoverPoll       = 5 * time.Millisecond
	delayedMoverBatch      = int64(25)
	delayedManyMessages    = 3000
	delayedInProcessMovers = 8
	delayedChildMovers     = 2
)

// TestDelayedMoverChildProcess is not a test: it is the body of the helper
// processes the mover tests start. It runs one DelayedMover until its stdin
// closes, then prints how many messages it moved.
func TestDelayedMoverChildProcess(t *testing.T) {
	if os.Getenv(delayedChildEnv) != "mover" {
		t.Skip("helper process for the delayed mover tests")
	}
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(delayedChildAddrEnv)})
	defer client.Close()
	batch, _ := strconv.ParseInt(os.Getenv(delayedChildBatchEnv), 10, 64)
	mover, err := redrive.NewDelayedMover(redrive.DelayedMoverConfig{
		Client:       client,
		Delayed:      os.Getenv(delayedChildSetEnv),
		Stream:       os.Getenv(delayedChildStreamEnv),
		PollInterval: delayedMoverPoll,
		BatchSize:    batch,
	}, nil)
	if err != nil {
		t.Fatalf("NewDelayedMover: %v", err)
	}
	counter := delayedCountMoves(t, mover)
	if err := mover.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !counter.waitPolled(delayedWait) {
		t.Fatal("the mover never polled")
	}
	fmt.Println(delayedChildReadyLine)
	_, _ = io.Copy(io.Discard, os.Stdin)
	mover.Stop()
	fmt.Printf("%s%d\n", delayedChildMovedLine, counter.stop())
}

// delayedMoveCounter adds up a mover's Moved signals and notes its first
// poll, taking every signal the mover sends so none fills.
type delayedMoveCounter struct {
	mover  *redrive.DelayedMover
	total  atomic.Int64
	polled chan struct{}
	quit   chan struct{}
	done   chan struct{}
}

// delayedCountMoves initialises the mover's test signals (before Start) and
// counts what it moves until stop.
func delayedCountMoves(t testing.TB, m *redrive.DelayedMover) *delayedMoveCounter {
	signals := testsignal.DelayedMoverOf(m)
	signals.Moved.Init(t)
	signals.Polled.Init(t)
	c := &delayedMoveCounter{mover: m, polled: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		firstPoll := true
		for {
			select {
			case n := <-signals.Moved.C():
				c.total.Add(int64(n))
			case <-signals.Polled.C():
				if firstPoll {
					close(c.polled)
					firstPoll = false
				}
			case <-c.quit:
				// The mover stopped: take what it sent last.
				for {
					select {
					case n := <-signals.Moved.C():
						c.total.Add(int64(n))
					default:
						return
					}
				}
			}
		}
	}()
	return c
}

// waitPolled tells whether the mover polled within timeout.
func (c *delayedMoveCounter) waitPolled(timeout time.Duration) bool {
	select {
	case <-c.polled:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop returns the total; call it after the mover was stopped, so no signal
// comes later.
func (c *delayedMoveCounter) stop() int64 {
	close(c.quit)
	<-c.done
	return c.total.Load()
}

// delayedChild is a helper process running TestDelayedMoverChildProcess.
type delayedChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	err   error
}

func delayedStartChild(t *testing.T, env ...string) *delayedChild {
	t.Helper()
	child := startChildProcess(t, "TestDelayedMoverChildProcess", 3*time.Minute, "child-*.log", env...)
	cmd, stdin, stdout := child.cmd, child.stdin, child.stdout
	c := &delayedChild{cmd: cmd, stdin: stdin, lines: make(chan string, 100), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	child.stopAtCleanup(t, c.done, 10*time.Second, func() { child.logStderr(t) })
	return c
}

// waitLine waits for a line starting with prefix and returns the rest.
func (c *delayedChild) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(delayedWait)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.done
				t.Fatalf("helper process %d exited (%v) before printing %q", c.cmd.Process.Pid, c.err, prefix)
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-timeout:
			t.Fatalf("helper process %d did not print %q within %v", c.cmd.Process.Pid, prefix, delayedWait)
		}
	}
}

// stop closes the child's stdin, so it stops its mover, and returns how many
// messages it moved.
func (c *delayedChild) stop(t *testing.T) int64 {
	t.Helper()
	_ = c.stdin.Close()
	rest := c.waitLine(t, delayedChildMovedLine)
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		t.Fatalf("helper process printed %q", rest)
	}
	select {
	case <-c.done:
	case <-time.After(delayedWait):
		t.Fatalf("helper process %d did not exit", c.cmd.Process.Pid)
	}
	if c.err != nil {
		t.Errorf("helper process %d: %v", c.cmd.Process.Pid, c.err)
	}
	return n
}

// delayedPublishMany publishes n messages delayed by from+i*step (only
// _watermill_delayed_for, so the due time is exact) and returns their UUIDs.
func delayedPublishMany(t *testing.T, pub *redrive.Publisher, topic string, n int, from, step time.Duration) map[string]bool {
	t.Helper()
	uuids := make(map[string]bool, n)
	msgs := make([]*message.Message, 0, n)
	for i := range n {
		msg := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
		msg.Metadata.Set(delay.DelayedForKey, (from + time.Duration(i)*step).String())
		msgs = append(msgs, msg)
		uuids[msg.UUID] = true
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return uuids
}

// delayedAssertStreamHoldsEachOnce reads the whole stream and checks that it
// holds exactly the messages in want, each once.
func delayedAssertStreamHoldsEachOnce(t *testing.T, client redis.UniversalClient, stream string, want map[string]bool) {
	t.Helper()
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %q: %v", stream, err)
	}
	if len(entries) != len(want) {
		t.Errorf("stream %q has %d entries, want %d", stream, len(entries), len(want))
	}
	seen := make(map[string]int, len(entries))
	for _, e := range entries {
		uuid, _ := e.Values[redrive.UUIDHeaderKey].(string)
		seen[uuid]++
	}
	dups, missing, unknown := 0, 0, 0
	for uuid, n := range seen {
		if n > 1 {
			dups++
			if dups <= 5 {
				t.Errorf("message %s is in the stream %d times", uuid, n)
			}
		}
		if !want[uuid] {
			unknown++
		}
	}
	for uuid := range want {
		if seen[uuid] == 0 {
			missing++
			if missing <= 5 {
				t.Errorf("message %s never entered the stream", uuid)
			}
		}
	}
	if dups+missing+unknown > 0 {
		t.Errorf("%d duplicated, %d missing, %d unknown messages in %q", dups, missing, unknown, stream)
	}
}

func delayedNewMover(t *testing.T, keys redrive.TopicKeys, batch int64) *redrive.DelayedMover {
	t.Helper()
	// A client of its own, as a separate process would have.
	client := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	m, err := redrive.NewDelayedMover(redrive.DelayedMoverConfig{
		Client:       client,
		Delayed:      keys.Delayed,
		Stream:       keys.Stream,
		PollInterval: delayedMoverPoll,
		BatchSize:    batch,
	}, nil)
	if err != nil {
		t.Fatalf("NewDelayedMover: %v", err)
	}
	return m
}

func delayedChildEnvFor(keys redrive.TopicKeys, batch int64) []string {
	return []string{
		delayedChildEnv + "=mover",
		delayedChildAddrEnv + "=" + redistest.Addr(),
		delayedChildSetEnv + "=" + keys.Delayed,
		delayedChildStreamEnv + "=" + keys.Stream,
		delayedChildBatchEnv + "=" + strconv.FormatInt(batch, 10),
	}
}

func TestDelayedManyMoversMoveEachMessageOnce(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-many-")
	keys := redrive.KeysFor(topic)
	pub := delayedNewPublisher(t, client)

	// Due from 300 ms to 1.8 s from now: some are due by the time all movers
	// run, the rest fall due while they compete.
	want := delayedPublishMany(t, pub, topic, delayedManyMessages, 300*time.Millisecond, 500*time.Microsecond)
	if zcard, xlen := delayedSnapshot(t, client, keys); zcard != delayedManyMessages || xlen != 0 {
		t.Fatalf("before any mover: delayed set %d, stream %d; want %d and 0", zcard, xlen, delayedManyMessages)
	}

	children := make([]*delayedChild, delayedChildMovers)
	for i := range children {
		children[i] = delayedStartChild(t, delayedChildEnvFor(keys, delayedMoverBatch)...)
	}
	movers := make([]*redrive.DelayedMover, delayedInProcessMovers)
	counters := make([]*delayedMoveCounter, delayedInProcessMovers)
	for i := range movers {
		movers[i] = delayedNewMover(t, keys, delayedMoverBatch)
		counters[i] = delayedCountMoves(t, movers[i])
	}
	for i, m := range movers {
		if err := m.Start(context.Background()); err != nil {
			t.Fatalf("Start mover %d: %v", i, err)
		}
		t.Cleanup(m.Stop)
	}
	for _, c := range children {
		c.waitLine(t, delayedChildReadyLine)
	}
	for i, c := range counters {
		if !c.waitPolled(delayedWait) {
			t.Fatalf("mover %d never polled", i)
		}
	}

	redistest.WaitFor(t, 60*time.Second, func() bool {
		zcard, xlen := delayedSnapshot(t, client, keys)
		return zcard == 0 && xlen >= delayedManyMessages
	}, "all %d messages moved into %q", delayedManyMessages, keys.Stream)

	// Stop everyone, then count: nothing can move any more.
	var total int64
	perMover := make([]int64, 0, len(movers)+len(children))
	for i, m := range movers {
		m.Stop()
		n := counters[i].stop()
		perMover = append(perMover, n)
		total += n
	}
	for _, c := range children {
		n := c.stop(t)
		perMover = append(perMover, n)
		total += n
	}
	t.Logf("moved per mover (8 in-process, then 2 processes): %v", perMover)

	zcard, xlen := delayedSnapshot(t, client, keys)
	if zcard != 0 || xlen != delayedManyMessages {
		t.Errorf("after all movers stopped: delayed set %d, stream %d; want 0 and %d", zcard, xlen, delayedManyMessages)
	}
	if total != delayedManyMessages {
		t.Errorf("movers report %d messages moved in all, want %d", total, delayedManyMessages)
	}
	delayedAssertStreamHoldsEachOnce(t, client, keys.Stream, want)
}

// State lives only in Redis: messages scheduled while a mover ran, the mover
// stopped, a process running a mover killed in the middle of its work, and a
// new mover started after everything fell due: every message arrives, once.
func TestDelayedMoverRestartLosesNothing(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("delayed-restart-")
	keys := redrive.KeysFor(topic)
	pub := delayedNewPublisher(t, client)

	want := delayedPublishMany(t, pub, topic, 100, 100*time.Millisecond, time.Millisecond)

	// A first mover moves some, then stops.
	first := delayedNewMover(t, keys, 10)
	firstSignals := testsignal.DelayedMoverOf(first)
	firstSignals.Moved.Init(t)
	if err := first.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(first.Stop)
	if _, ok := firstSignals.Moved.WaitOrTimeout(delayedWait); !ok {
		t.Fatal("the first mover never moved anything")
	}
	first.Stop()
	zcard, xlen := delayedSnapshot(t, client, keys)
	if zcard+xlen != 100 || xlen == 0 {
		t.Fatalf("after the first mover stopped: delayed set %d + stream %d; want 100 with some moved", zcard, xlen)
	}
	t.Logf("first mover stopped with %d in the stream, %d still delayed", xlen, zcard)

	// More messages are scheduled while no mover runs.
	for uuid := range delayedPublishMany(t, pub, topic, 400, 200*time.Millisecond, time.Millisecond) {
		want[uuid] = true
	}

	// A process moving one message per call is killed in the middle of its
	// work: the script is atomic, so nothing is lost or doubled.
	child := delayedStartChild(t, delayedChildEnvFor(keys, 1)...)
	child.waitLine(t, delayedChildReadyLine)
	redistest.WaitFor(t, delayedWait, func() bool {
		_, xlen := delayedSnapshot(t, client, keys)
		return xlen >= 150
	}, "the helper process to move some messages")
	if err := child.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill helper process: %v", err)
	}
	<-child.done
	zcard, xlen = delayedSnapshot(t, client, keys)
	if zcard+xlen != 500 {
		t.Fatalf("after the helper process was killed: delayed set %d + stream %d != 500", zcard, xlen)
	}
	t.Logf("helper process killed with %d in the stream, %d still delayed", xlen, zcard)

	// Everything falls due with no mover running; nothing moves meanwhile.
	lastDue := time.Now().Add(200*time.Millisecond + 400*time.Millisecond)
	redistest.WaitFor(t, delayedWait, func() bool { return time.Now().After(lastDue) }, "the last due time")
	zcard2, xlen2 := delayedSnapshot(t, client, keys)
	if zcard2 != zcard || xlen2 != xlen {
		t.Fatalf("with no mover running the counts changed: delayed set %d->%d, stream %d->%d", zcard, zcard2, xlen, xlen2)
	}

	// A new mover, started later, moves the rest.
	second := delayedNewMover(t, keys, delayedMoverBatch)
	secondCount := delayedCountMoves(t, second)
	if err := second.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(second.Stop)
	redistest.WaitFor(t, delayedWait, func() bool {
		zcard, _ := delayedSnapshot(t, client, keys)
		return zcard == 0
	}, "the new mover to empty %q", keys.Delayed)
	second.Stop()
	if moved := secondCount.stop(); moved != zcard {
		t.Errorf("the new mover moved %d messages, want the %d left", moved, zcard)
	}
	delayedAssertStreamHoldsEachOnce(t, client, keys.Stream, want)
}
