package tests

// The retry middleware and the subscriber under faults: Redis stopped right
// when a retry is scheduled, processes killed between delivery and ack (the
// crash-loop guard), two consumer groups on one topic at scale, and the
// atomic ack+requeue seen from Redis while it runs.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// retryFaultWait bounds every wait of these tests: far above what any step
// needs, so only a real failure reaches it.
const retryFaultWait = 30 * time.Second

func retryFaultRetry(t *testing.T, config middleware.RetryConfig) *middleware.Retry {
	t.Helper()
	r, err := middleware.NewRetry(config, nil)
	if err != nil {
		t.Fatalf("NewRetry: %v", err)
	}
	return r
}

func retryFaultRouter(t *testing.T) *message.Router {
	t.Helper()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	return router
}

// retryFaultRun runs router until the test ends; the returned func closes it
// earlier.
func retryFaultRun(t *testing.T, router *message.Router) (closeRouter func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := router.Run(context.Background()); err != nil {
			t.Errorf("router.Run: %v", err)
		}
	}()
	select {
	case <-router.Running():
	case <-time.After(retryFaultWait):
		t.Fatal("router did not start")
	}
	var once sync.Once
	closeRouter = func() {
		once.Do(func() {
			_ = router.Close()
			<-done
		})
	}
	t.Cleanup(closeRouter)
	return closeRouter
}

func retryFaultCount(t *testing.T, cmd interface{ Result() (int64, error) }, what string) int64 {
	t.Helper()
	n, err := cmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("%s: %v", what, err)
	}
	return n
}

// retryFaultWaitSettled waits until group holds nothing of topic any more:
// no pending entry in the stream, nothing in its retry stream or retry set.
func retryFaultWaitSettled(t *testing.T, client redis.UniversalClient, topic, group string) {
	t.Helper()
	keys := redrive.KeysFor(topic)
	ctx := context.Background()
	var pending, retryLen, retryDelayed int64
	redistest.WaitFor(t, retryFaultWait, func() bool {
		pending = pendingCount(t, client, topic, group)
		retryLen = retryFaultCount(t, client.XLen(ctx, keys.GroupRetry(group)), "XLEN")
		retryDelayed = retryFaultCount(t, client.ZCard(ctx, keys.GroupRetryDelayed(group)), "ZCARD")
		return pending == 0 && retryLen == 0 && retryDelayed == 0
	}, "group %q to settle %q", group, topic)
}

// --- Redis stopped right when the retry is scheduled ---

func TestRetryFaultRequeueFailsWhileRedisIsStopped(t *testing.T) {
	t.Parallel()
	server := redistest.StartServer(t, redistest.ServerOptions{AppendOnly: true})
	client := server.Client(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("retry-fault-down-")
	poisonTopic := redistest.RandomTopic("retry-fault-down-poison-")
	const group = "down"
	keys := redrive.KeysFor(topic)

	pub := newPublisher(t, client)
	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client:          client,
		ConsumerGroup:   group,
		NackResendSleep: 50 * time.Millisecond,
	}, watermill.NopLogger{})
	retry := retryFaultRetry(t, middleware.RetryConfig{
		Publisher:       pub,
		PoisonTopic:     poisonTopic,
		MaxRetries:      5,
		InitialInterval: 100 * time.Millisecond,
		MaxInterval:     time.Second,
		RequeueTimeout:  5 * time.Second,
	})

	router := retryFaultRouter(t)
	routerErrs := make(chan error, 10)
	// Outermost: sees what the router gets from the retry middleware.
	router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil {
				routerErrs <- err
			}
			return out, err
		}
	}, retry.Middleware)

	type delivery struct {
		md     message.Metadata
		stream string
	}
	var (
		deliveries []delivery
		mu         sync.Mutex
		entered    = make(chan struct{})
		release    = make(chan struct{})
		redisBack  = make(chan struct{})
		handled    = make(chan struct{})
	)
	router.AddConsumerHandler("down", topic, sub, func(msg *message.Message) error {
		d := delivery{md: msg.Copy().Metadata}
		if rd, ok := redrive.DeliveryOf(msg); ok {
			d.stream = rd.Stream
		}
		mu.Lock()
		deliveries = append(deliveries, d)
		n := len(deliveries)
		mu.Unlock()
		switch n {
		case 1:
			close(entered)
			<-release
			return errors.New("first failure, Redis stopped before the retry is scheduled")
		case 2:
			// Redelivered after the nack, maybe before Redis is back.
			<-redisBack
			return errors.New("second failure, Redis is back")
		case 3:
			close(handled)
			return nil
		default:
			return fmt.Errorf("unexpected delivery %d", n)
		}
	})
	retryFaultRun(t, router)

	msg := message.NewMessage(watermill.NewUUID(), []byte("survives a Redis stop"))
	if err := pub.Publish(topic, msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case <-entered:
	case <-time.After(retryFaultWait):
		t.Fatal("the handler never got the message")
	}

	server.Stop()
	close(release)
	select {
	case err := <-routerErrs:
		if !strings.Contains(err.Error(), "first failure") || !strings.Contains(err.Error(), "requeue failed") {
			t.Errorf("the router got %q, want the handler's error and the failed requeue", err)
		}
	case <-time.After(retryFaultWait):
		t.Fatal("the failed requeue never reached the router")
	}

	server.Restart()
	// Nothing was acked or scheduled: the delivery is still pending in Redis,
	// so even a crash now would not lose it.
	if n := pendingCount(t, client, topic, group); n != 1 {
		t.Errorf("after the failed requeue %d entries are pending, want 1", n)
	}
	if n := retryFaultCount(t, client.ZCard(ctx, keys.GroupRetryDelayed(group)), "ZCARD"); n != 0 {
		t.Errorf("the retry set holds %d messages after the failed requeue, want 0", n)
	}
	close(redisBack)

	select {
	case <-handled:
	case <-time.After(retryFaultWait):
		t.Fatal("the message was never handled after Redis came back")
	}
	retryFaultWaitSettled(t, client, topic, group)
	if n := retryFaultCount(t, client.XLen(ctx, poisonTopic), "XLEN poison"); n != 0 {
		t.Errorf("poison topic has %d messages, want 0", n)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 3 {
		t.Fatalf("the handler got the message %d times, want 3 (fail with Redis down, fail, succeed)", len(deliveries))
	}
	// Delivery 2 is the router's redelivery after the nack: the same entry of
	// the stream. Delivery 3 is the retry, read from the group's retry stream.
	if deliveries[1].stream != topic {
		t.Errorf("delivery 2 came from %q, want the topic's stream (redelivery after nack)", deliveries[1].stream)
	}
	if deliveries[2].stream != keys.GroupRetry(group) {
		t.Errorf("delivery 3 came from %q, want the group's retry stream %q", deliveries[2].stream, keys.GroupRetry(group))
	}
	st, err := middleware.ReadRetryState(deliveries[2].md)
	if err != nil {
		t.Fatalf("retry metadata of the last delivery: %v", err)
	}
	if st.Attempts != 2 || len(st.History) != 2 {
		t.Errorf("last delivery says %d failures with %d in the history, want 2 and 2", st.Attempts, len(st.History))
	}
	if !strings.Contains(st.LastError, "second failure") {
		t.Errorf("last error %q, want the second failure", st.LastError)
	}
}

// --- A process killed between delivery and ack: the crash-loop guard ---

const (
	retryFaultChildEnv         = "REDRIVE_TEST_RETRYFAULT_CHILD"
	retryFaultChildAddrEnv     = "REDRIVE_TEST_RETRYFAULT_ADDR"
	retryFaultChildTopicEnv    = "REDRIVE_TEST_RETRYFAULT_TOPIC"
	retryFaultChildGroupEnv    = "REDRIVE_TEST_RETRYFAULT_GROUP"
	retryFaultChildConsumerEnv = "REDRIVE_TEST_RETRYFAULT_CONSUMER"
	retryFaultChildKillerEnv   = "REDRIVE_TEST_RETRYFAULT_KILLER"
	retryFaultChildMarkersEnv  = "REDRIVE_TEST_RETRYFAULT_MARKERS"
	retryFaultChildHandledEnv  = "REDRIVE_TEST_RETRYFAULT_HANDLED"
	retryFaultChildInFlightEnv = "REDRIVE_TEST_RETRYFAULT_INFLIGHT"
	retryFaultChildReadyLine   = "REDRIVE-RETRYFAULT-CHILD READY"

	retryFaultMaxDeliveries = 3
)

// retryFaultChildSubscriberConfig is the subscriber of the crash-loop
// children: a dead child's entries are claimed quickly.
func retryFaultChildSubscriberConfig(client redis.UniversalClient, group, consumer string, maxInFlight int) redrive.SubscriberConfig {
	return redrive.SubscriberConfig{
		Client:        client,
		ConsumerGroup: group,
		Consumer:      consumer,
		MaxIdleTime:   300 * time.Millisecond,
		ClaimInterval: 100 * time.Millisecond,
		MaxDeliveries: retryFaultMaxDeliveries,
		MaxInFlight:   maxInFlight,
	}
}

// TestRetryFaultCrashLoopChildProcess is not a test: it is the body of the
// helper processes of TestRetryFaultCrashLoopGuard. It handles the topic in a
// router; every message is counted in a Redis hash, except the killer
// message, on which it writes a marker and SIGKILLs itself.
func TestRetryFaultCrashLoopChildProcess(t *testing.T) {
	if os.Getenv(retryFaultChildEnv) != "crashloop" {
		t.Skip("helper process for TestRetryFaultCrashLoopGuard")
	}
	var (
		topic    = os.Getenv(retryFaultChildTopicEnv)
		group    = os.Getenv(retryFaultChildGroupEnv)
		consumer = os.Getenv(retryFaultChildConsumerEnv)
		killer   = os.Getenv(retryFaultChildKillerEnv)
		markers  = os.Getenv(retryFaultChildMarkersEnv)
		handled  = os.Getenv(retryFaultChildHandledEnv)
	)
	maxInFlight, _ := strconv.Atoi(os.Getenv(retryFaultChildInFlightEnv))
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(retryFaultChildAddrEnv)})
	defer client.Close()
	ctx := context.Background()

	sub, err := redrive.NewSubscriber(retryFaultChildSubscriberConfig(client, group, consumer, maxInFlight), nil)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	router.AddConsumerHandler("crash", topic, sub, func(msg *message.Message) error {
		if msg.UUID != killer {
			return client.HIncrBy(ctx, handled, msg.UUID, 1).Err()
		}
		// Before dying, let the acks of every other message this process
		// was given reach Redis, so only the killer message is left pending
		// here (the test counts the others exactly).
		deadline := time.Now().Add(retryFaultWait)
		for {
			p, err := client.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: topic, Group: group, Start: "-", End: "+", Count: 1000, Consumer: consumer,
			}).Result()
			if err == nil && len(p) == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := client.RPush(ctx, markers, consumer).Err(); err != nil {
			fmt.Fprintf(os.Stderr, "marker: %v\n", err)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = router.Run(runCtx) }()
	<-router.Running()
	fmt.Println(retryFaultChildReadyLine)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = router.Close()
}

type retryFaultChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{}
	done  chan struct{}
	state *os.ProcessState
}

func retryFaultStartChild(t *testing.T, env []string) *retryFaultChild {
	t.Helper()
	child := startChildProcess(t, "TestRetryFaultCrashLoopChildProcess", 3*time.Minute, "child-*.log", env...)
	cmd, stdin, stdout := child.cmd, child.stdin, child.stdout
	c := &retryFaultChild{cmd: cmd, stdin: stdin, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		b := make([]byte, 4096)
		var out strings.Builder
		readySeen := false
		for {
			n, err := stdout.Read(b)
			out.Write(b[:n])
			if !readySeen && strings.Contains(out.String(), retryFaultChildReadyLine) {
				readySeen = true
				close(c.ready)
			}
			if err != nil {
				break
			}
		}
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	child.stopAtCleanup(t, c.done, 15*time.Second, func() { child.logStderr(t) })
	return c
}

func (c *retryFaultChild) killedBySIGKILL() bool {
	ws, ok := c.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func retryFaultMessages(prefix string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(prefix+"-"+strconv.Itoa(i)))
	}
	return msgs
}

func TestRetryFaultCrashLoopGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxInFlight int
	}{
		{"default MaxInFlight", 0},
		// Strict order: one message out at a time.
		{"MaxInFlight 1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			retryFaultCrashLoop(t, tc.maxInFlight)
		})
	}
}

func retryFaultCrashLoop(t *testing.T, maxInFlight int) {
	client := redistest.NewClient(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("retry-fault-crash-")
	keys := redrive.KeysFor(topic)
	const group = "crash"
	markers := topic + ":test-markers"
	handled := topic + ":test-handled"
	t.Cleanup(func() { client.Del(context.Background(), markers, handled) })
	pub := newPublisher(t, client)

	killer := message.NewMessage(watermill.NewUUID(), []byte("kills its consumer"))
	killer.Metadata.Set("role", "killer")
	others := map[string]bool{}
	publishOthers := func(prefix string, n int) {
		t.Helper()
		msgs := retryFaultMessages(prefix, n)
		if err := pub.Publish(topic, msgs...); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		for _, m := range msgs {
			others[m.UUID] = true
		}
	}
	publishOthers("before", 20)
	if err := pub.Publish(topic, killer); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	publishOthers("after", 20)

	poisonLen := func() int64 { return retryFaultCount(t, client.XLen(ctx, keys.Poison), "XLEN poison") }
	killed := 0
	poisoned := false
	deadline := time.Now().Add(90 * time.Second)
	for i := 1; i <= retryFaultMaxDeliveries+3 && !poisoned; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no poison after %d children and 90 s", i-1)
		}
		consumer := fmt.Sprintf("child-%d", i)
		child := retryFaultStartChild(t, []string{
			retryFaultChildEnv + "=crashloop",
			retryFaultChildAddrEnv + "=" + redistest.Addr(),
			retryFaultChildTopicEnv + "=" + topic,
			retryFaultChildGroupEnv + "=" + group,
			retryFaultChildConsumerEnv + "=" + consumer,
			retryFaultChildKillerEnv + "=" + killer.UUID,
			retryFaultChildMarkersEnv + "=" + markers,
			retryFaultChildHandledEnv + "=" + handled,
			retryFaultChildInFlightEnv + "=" + strconv.Itoa(maxInFlight),
		})
		select {
		case <-child.ready:
		case <-child.done:
			t.Fatalf("%s exited before it was ready: %v", consumer, child.state)
		case <-time.After(retryFaultWait):
			t.Fatalf("%s never got ready", consumer)
		}
		exited := false
		// The killer message is claimed 300 ms after its consumer died.
		redistest.WaitFor(t, 20*time.Second, func() bool {
			select {
			case <-child.done:
				exited = true
				return true
			default:
			}
			return poisonLen() > 0
		}, "%s to die on the killer message or the killer message to be poisoned", consumer)
		if exited {
			if !child.killedBySIGKILL() {
				t.Fatalf("%s exited with %v, want killed by SIGKILL", consumer, child.state)
			}
			killed++
			// Survivors get more work than the killer message.
			publishOthers(fmt.Sprintf("between-%d", i), 10)
			continue
		}
		poisoned = true
		_ = child.stdin.Close()
		select {
		case <-child.done:
		case <-time.After(retryFaultWait):
			t.Fatalf("%s did not exit after its stdin closed", consumer)
		}
		if !child.state.Success() {
			t.Errorf("%s, the survivor, exited with %v", consumer, child.state)
		}
	}
	if !poisoned {
		t.Fatalf("the killer message was never poisoned (%d children killed)", killed)
	}

	got, err := client.LRange(ctx, markers, 0, -1).Result()
	if err != nil {
		t.Fatalf("LRANGE markers: %v", err)
	}
	if len(got) != retryFaultMaxDeliveries || killed != retryFaultMaxDeliveries {
		t.Errorf("%d children received the killer message (%v) and %d were killed, want MaxDeliveries = %d",
			len(got), got, killed, retryFaultMaxDeliveries)
	}

	// The poison entry.
	entries, err := client.XRange(ctx, keys.Poison, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE poison: %v", err)
	}
	if len(entries) != 1 {
		t.Fatalf("poison stream has %d entries, want 1", len(entries))
	}
	pm, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(entries[0].Values)
	if err != nil {
		t.Fatalf("poison entry does not decode: %v", err)
	}
	if pm.UUID != killer.UUID || string(pm.Payload) != string(killer.Payload) || pm.Metadata.Get("role") != "killer" {
		t.Errorf("poison entry is %s %q %v, want the killer message", pm.UUID, pm.Payload, pm.Metadata)
	}
	if r := pm.Metadata.Get(wmiddleware.ReasonForPoisonedKey); !strings.HasPrefix(r, redrive.ReasonExceededMaxDeliveries) {
		t.Errorf("%s = %q, want it to start with %q", wmiddleware.ReasonForPoisonedKey, r, redrive.ReasonExceededMaxDeliveries)
	}
	if got := pm.Metadata.Get(wmiddleware.PoisonedTopicKey); got != topic {
		t.Errorf("%s = %q, want %q", wmiddleware.PoisonedTopicKey, got, topic)
	}
	if got := pm.Metadata.Get(redrive.MetadataPoisonedConsumerGroup); got != group {
		t.Errorf("%s = %q, want %q", redrive.MetadataPoisonedConsumerGroup, got, group)
	}

	// A final, normal subscriber drains what is left.
	publishOthers("final", 20)
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group, Consumer: "final"}, watermill.NopLogger{})
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for m := range msgs {
			if err := client.HIncrBy(ctx, handled, m.UUID, 1).Err(); err != nil {
				m.Nack()
				continue
			}
			m.Ack()
		}
	}()
	redistest.WaitFor(t, retryFaultWait, func() bool {
		n, err := client.HLen(ctx, handled).Result()
		return err == nil && n >= int64(len(others))
	}, "all %d other messages handled", len(others))
	_ = sub.Close()
	<-drained

	counts, err := client.HGetAll(ctx, handled).Result()
	if err != nil {
		t.Fatalf("HGETALL: %v", err)
	}
	for uuid := range others {
		if counts[uuid] != "1" {
			t.Errorf("other message %s handled %q times, want 1", uuid, counts[uuid])
		}
	}
	if n, ok := counts[killer.UUID]; ok {
		t.Errorf("the killer message was handled %s times", n)
	}
	if len(counts) != len(others) {
		t.Errorf("%d messages handled, want %d", len(counts), len(others))
	}
	if n := pendingCount(t, client, topic, group); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

// A consumer died holding a message; the survivor is idle, blocked in its
// read. Whatever MaxInFlight is, the survivor's claimer must take the
// message over after MaxIdleTime: the crash-loop guard, which counts
// deliveries at claim time, depends on it.
func TestRetryFaultIdleSurvivorClaimsWithFewInFlightSlots(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxInFlight int
	}{
		{"MaxInFlight 1", 1},
		{"MaxInFlight equal to ReadBatchSize", int(redrive.DefaultReadBatchSize)},
		{"MaxInFlight above ReadBatchSize", int(redrive.DefaultReadBatchSize) + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := redistest.NewClient(t)
			ctx := context.Background()
			topic := redistest.RandomTopic("retry-fault-claim-")
			const group = "claim"
			if err := client.XGroupCreateMkStream(ctx, topic, group, "0").Err(); err != nil {
				t.Fatalf("XGROUP CREATE: %v", err)
			}
			pub := newPublisher(t, client)
			msg := message.NewMessage(watermill.NewUUID(), []byte("left by a dead consumer"))
			if err := pub.Publish(topic, msg); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			// The consumer that dies: it reads the entry and never acks.
			if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: group, Consumer: "dead", Streams: []string{topic, ">"}, Count: 1,
			}).Err(); err != nil {
				t.Fatalf("XREADGROUP: %v", err)
			}
			sub := newSubscriber(t, retryFaultChildSubscriberConfig(client, group, "survivor", tc.maxInFlight), watermill.NopLogger{})
			subCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			msgs, err := sub.Subscribe(subCtx, topic)
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			select {
			case got := <-msgs:
				got.Ack()
				if got.UUID != msg.UUID {
					t.Errorf("got %s, want %s", got.UUID, msg.UUID)
				}
			case <-time.After(15 * time.Second):
				// MaxIdleTime is 300 ms and ClaimInterval 100 ms.
				t.Fatalf("the dead consumer's message was not claimed within 15 s")
			}
		})
	}
}

// --- Two groups on one topic, one of them failing once, at scale ---

func TestRetryFaultTwoGroupsAtScale(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("retry-fault-groups-")
	poisonTopic := redistest.RandomTopic("retry-fault-groups-poison-")
	keys := redrive.KeysFor(topic)
	const n = 1000
	pub := newPublisher(t, client)
	retry := retryFaultRetry(t, middleware.RetryConfig{
		Publisher:           pub,
		PoisonTopic:         poisonTopic,
		MaxRetries:          3,
		InitialInterval:     50 * time.Millisecond,
		MaxInterval:         500 * time.Millisecond,
		RandomizationFactor: 0.5,
	})

	var (
		mu               sync.Mutex
		seenA, seenB     = map[string]int{}, map[string]int{}
		doneA, doneB     atomic.Int64
		streamsOfSecondA = map[string]int{}
	)
	handlerA := func(msg *message.Message) error {
		mu.Lock()
		seenA[msg.UUID]++
		k := seenA[msg.UUID]
		if k == 2 {
			if d, ok := redrive.DeliveryOf(msg); ok {
				streamsOfSecondA[d.Stream]++
			}
		}
		mu.Unlock()
		if k == 1 {
			return errors.New("group A fails the first time")
		}
		doneA.Add(1)
		return nil
	}
	handlerB := func(msg *message.Message) error {
		mu.Lock()
		seenB[msg.UUID]++
		mu.Unlock()
		doneB.Add(1)
		return nil
	}

	router := retryFaultRouter(t)
	// Both groups run the retry middleware; only A ever fails. Group A has
	// two consumers.
	for _, h := range []struct {
		name, group string
		fn          message.NoPublishHandlerFunc
	}{
		{"a1", "A", handlerA},
		{"a2", "A", handlerA},
		{"b", "B", handlerB},
	} {
		sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: h.group, Consumer: h.name}, watermill.NopLogger{})
		router.AddConsumerHandler(h.name, topic, sub, h.fn).AddMiddleware(retry.Middleware)
	}
	closeRouter := retryFaultRun(t, router)

	msgs := retryFaultMessages("groups", n)
	for start := 0; start < n; start += 100 {
		if err := pub.Publish(topic, msgs[start:start+100]...); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	redistest.WaitFor(t, 60*time.Second, func() bool {
		return doneA.Load() >= n && doneB.Load() >= n
	}, "both groups to handle %d messages (A %d, B %d)", n, doneA.Load(), doneB.Load())
	retryFaultWaitSettled(t, client, topic, "A")
	retryFaultWaitSettled(t, client, topic, "B")
	closeRouter()

	mu.Lock()
	defer mu.Unlock()
	badA, badB := 0, 0
	for _, m := range msgs {
		if seenA[m.UUID] != 2 {
			badA++
			if badA <= 5 {
				t.Errorf("group A saw %s %d times, want 2 (failed, then succeeded)", m.UUID, seenA[m.UUID])
			}
		}
		if seenB[m.UUID] != 1 {
			badB++
			if badB <= 5 {
				t.Errorf("group B saw %s %d times, want 1", m.UUID, seenB[m.UUID])
			}
		}
	}
	if badA+badB > 0 || len(seenA) != n || len(seenB) != n {
		t.Errorf("%d wrong in A, %d wrong in B; A saw %d distinct, B %d, want %d", badA, badB, len(seenA), len(seenB), n)
	}
	if streamsOfSecondA[keys.GroupRetry("A")] != n {
		t.Errorf("second deliveries to A came from %v, want all %d from A's retry stream", streamsOfSecondA, n)
	}
	if n := retryFaultCount(t, client.XLen(ctx, poisonTopic), "XLEN poison"); n != 0 {
		t.Errorf("poison topic has %d messages, want 0", n)
	}
	// B's private retry keys never held anything.
	if n := retryFaultCount(t, client.Exists(ctx, keys.GroupRetryDelayed("B")), "EXISTS"); n != 0 {
		t.Errorf("group B's retry set exists")
	}
}

// --- The atomic ack+requeue, seen from Redis ---

// retryFaultSnapshot is one atomic (MULTI) view of where a group's messages
// are.
type retryFaultSnapshot struct {
	entriesRead  int64 // main stream entries delivered to the group
	pendingMain  int64 // delivered, not settled
	retryDelayed int64 // waiting in the group's retry set
	retryStream  int64 // in the group's retry stream (settled entries are deleted)
}

func retryFaultTakeSnapshot(t *testing.T, client redis.UniversalClient, topic, group string) retryFaultSnapshot {
	t.Helper()
	ctx := context.Background()
	keys := redrive.KeysFor(topic)
	var (
		groups  *redis.XInfoGroupsCmd
		pending *redis.XPendingCmd
		zcard   *redis.IntCmd
		xlen    *redis.IntCmd
	)
	_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		groups = p.XInfoGroups(ctx, topic)
		pending = p.XPending(ctx, topic, group)
		zcard = p.ZCard(ctx, keys.GroupRetryDelayed(group))
		xlen = p.XLen(ctx, keys.GroupRetry(group))
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	s := retryFaultSnapshot{pendingMain: pending.Val().Count, retryDelayed: zcard.Val(), retryStream: xlen.Val()}
	found := false
	for _, g := range groups.Val() {
		if g.Name == group {
			s.entriesRead = g.EntriesRead
			found = true
		}
	}
	if !found {
		t.Fatalf("snapshot: no group %q on %q", group, topic)
	}
	return s
}

func TestRetryFaultAckAndRequeueAreAtomic(t *testing.T) {
	t.Parallel()
	t.Run("one failure", func(t *testing.T) {
		t.Parallel()
		client := redistest.NewClient(t)
		topic := redistest.RandomTopic("retry-fault-atomic1-")
		const group = "atomic"
		pub := newPublisher(t, client)
		retried := make(chan middleware.RetryEvent, 1)
		retry := retryFaultRetry(t, middleware.RetryConfig{
			Publisher:       pub,
			PoisonTopic:     redistest.RandomTopic("retry-fault-atomic1-poison-"),
			InitialInterval: time.Minute, // stays in the retry set for the whole test
			MaxInterval:     time.Hour,
			OnRetry:         func(e middleware.RetryEvent) { retried <- e },
		})
		sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, watermill.NopLogger{})
		router := retryFaultRouter(t)
		router.AddConsumerHandler("fail", topic, sub, func(*message.Message) error {
			return errors.New("always fails")
		}).AddMiddleware(retry.Middleware)
		retryFaultRun(t, router)

		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		var e middleware.RetryEvent
		select {
		case e = <-retried:
		case <-time.After(retryFaultWait):
			t.Fatal("no retry was scheduled")
		}
		// OnRetry runs right after the requeue script: no waiting, the state
		// must already be final.
		s := retryFaultTakeSnapshot(t, client, topic, group)
		if s.entriesRead != 1 || s.pendingMain != 0 || s.retryDelayed != 1 || s.retryStream != 0 {
			t.Errorf("after the failed handler: %+v, want 1 read, 0 pending, 1 in the retry set, 0 in the retry stream", s)
		}
		scores, err := client.ZRangeWithScores(context.Background(), redrive.KeysFor(topic).GroupRetryDelayed(group), 0, -1).Result()
		if err != nil || len(scores) != 1 {
			t.Fatalf("ZRANGE retry set: %v %v", scores, err)
		}
		// Scores are due times in milliseconds rounded up, so that nothing
		// is moved before it is due.
		wantScore := (e.DueAt.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
		if int64(scores[0].Score) != wantScore {
			t.Errorf("retry set score %d, want the retry's due time %d", int64(scores[0].Score), wantScore)
		}
	})

	t.Run("conserved under load", func(t *testing.T) {
		t.Parallel()
		client := redistest.NewClient(t)
		topic := redistest.RandomTopic("retry-fault-atomic-")
		poisonTopic := redistest.RandomTopic("retry-fault-atomic-poison-")
		const (
			group = "atomic"
			n     = 300
		)
		pub := newPublisher(t, client)
		var failing atomic.Bool
		failing.Store(true)
		var failures atomic.Int64
		var mu sync.Mutex
		succeeded := map[string]int{}
		var lastAttempts sync.Map
		retry := retryFaultRetry(t, middleware.RetryConfig{
			Publisher:           pub,
			PoisonTopic:         poisonTopic,
			MaxRetries:          100000,
			InitialInterval:     5 * time.Millisecond,
			MaxInterval:         20 * time.Millisecond,
			RandomizationFactor: 0.5,
		})
		sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group}, watermill.NopLogger{})
		router := retryFaultRouter(t)
		router.AddConsumerHandler("churn", topic, sub, func(msg *message.Message) error {
			if failing.Load() {
				failures.Add(1)
				return errors.New("fails while the test watches")
			}
			st, _ := middleware.ReadRetryState(msg.Metadata)
			lastAttempts.Store(msg.UUID, st.Attempts)
			mu.Lock()
			succeeded[msg.UUID]++
			mu.Unlock()
			return nil
		}).AddMiddleware(retry.Middleware)

		// All messages are in the stream before anyone reads it, so the
		// stream's length stays n.
		msgs := retryFaultMessages("churn", n)
		if err := pub.Publish(topic, msgs...); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		retryFaultRun(t, router)

		// While every delivery fails, each message is in exactly one place:
		// not yet read, pending in the stream, in the retry set, or in the
		// retry stream (waiting or pending). Every snapshot must add up to n.
		snapshots, violations := 0, 0
		deadline := time.Now().Add(60 * time.Second)
		for failures.Load() < 4*n || snapshots < 200 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d failures and %d snapshots in 60 s", failures.Load(), snapshots)
			}
			s := retryFaultTakeSnapshot(t, client, topic, group)
			snapshots++
			if total := (n - s.entriesRead) + s.pendingMain + s.retryDelayed + s.retryStream; total != n {
				violations++
				if violations <= 5 {
					t.Errorf("snapshot %d: %+v adds up to %d messages, want %d", snapshots, s, total, n)
				}
			}
		}
		t.Logf("%d snapshots over %d failures, %d not adding up", snapshots, failures.Load(), violations)

		failing.Store(false)
		redistest.WaitFor(t, retryFaultWait, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(succeeded) == n
		}, "all %d messages to succeed", n)
		retryFaultWaitSettled(t, client, topic, group)

		mu.Lock()
		defer mu.Unlock()
		for uuid, k := range succeeded {
			if k != 1 {
				t.Errorf("message %s succeeded %d times, want 1", uuid, k)
			}
		}
		if k := retryFaultCount(t, client.XLen(context.Background(), poisonTopic), "XLEN poison"); k != 0 {
			t.Errorf("poison topic has %d messages, want 0", k)
		}
		totalAttempts := 0
		lastAttempts.Range(func(_, v any) bool { totalAttempts += v.(int); return true })
		if int64(totalAttempts) != failures.Load() {
			t.Errorf("retry metadata counts %d failures in all, the handler failed %d times", totalAttempts, failures.Load())
		}
	})
}
