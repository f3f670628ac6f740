package tests

// Fault tests: a consumer process killed with SIGKILL in the middle
// of a batch, Redis killed and restarted under load, and connections cut in
// the middle of commands. Each runs on loopback against a redis-server the
// test owns, waits only on conditions with generous bounds, and logs its
// figures (messages, lost, duplicates, kills, durations) with t.Logf.
//
// TestFaultChildProcess is the body of the consumer processes these tests and
// the soak test (soak_test.go) start and kill.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

const (
	// faultWait bounds every wait of these tests: far above what a step
	// needs on two busy cores under -race, so only a real failure reaches it.
	faultWait = 60 * time.Second

	// faultChildEnv carries a child process's faultChildConfig (JSON).
	faultChildEnv       = "REDRIVE_TEST_FAULT_CHILD"
	faultChildReadyLine = "REDRIVE-FAULT-CHILD READY"

	// faultKindKey is the metadata that tells a child's handler how to
	// treat a message: faultKindTransient fails its first attempt,
	// faultKindPermanent always fails with middleware.Permanent, anything
	// else succeeds.
	faultKindKey       = "fault_kind"
	faultKindTransient = "transient"
	faultKindPermanent = "permanent"

	// faultSeqKey numbers the messages of the in-process publisher.
	faultSeqKey = "fault_seq"

	// Subscriber settings of every fault test: a dead consumer's entries,
	// or entries whose read reply was lost, are taken over quickly.
	faultMaxIdleTime   = 2 * time.Second
	faultClaimInterval = 200 * time.Millisecond
)

// faultChildConfig configures a consumer process.
type faultChildConfig struct {
	Addr     string
	Topic    string
	Group    string
	Consumer string
	// Handled is a hash: message UUID -> number of successful handlings.
	Handled string
	// PerConsumer is a hash: consumer -> number of successful handlings.
	PerConsumer string

	// Subscriber settings; 0 keeps redrive's default.
	MaxInFlight   int
	ReadBatchSize int64
	AckBatchSize  int
	MaxIdleTime   time.Duration
	ClaimInterval time.Duration
	// RetryInitialInterval is the retry middleware's first backoff.
	RetryInitialInterval time.Duration
}

// TestFaultChildProcess is not a test: it is the body of the consumer
// processes of the fault and soak tests. It runs a redrive router (router.New:
// subscriber, retry middleware, poison topic) with one handler in the
// configured consumer group, and records each successful handling in Redis,
// until its stdin closes (the parent stopped it, or died).
func TestFaultChildProcess(t *testing.T) {
	raw := os.Getenv(faultChildEnv)
	if raw == "" {
		t.Skip("helper process of the fault and soak tests")
	}
	var cfg faultChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("%s: %v", faultChildEnv, err)
	}
	client := redis.NewClient(&redis.Options{Addr: cfg.Addr})
	defer client.Close()
	ctx := context.Background()

	r, err := router.New(router.Config{
		Client:       client,
		RouterConfig: message.RouterConfig{CloseTimeout: 10 * time.Second},
		Subscriber: redrive.SubscriberConfig{
			Consumer:      cfg.Consumer,
			MaxInFlight:   cfg.MaxInFlight,
			ReadBatchSize: cfg.ReadBatchSize,
			AckBatchSize:  cfg.AckBatchSize,
			MaxIdleTime:   cfg.MaxIdleTime,
			ClaimInterval: cfg.ClaimInterval,
			CloseTimeout:  5 * time.Second,
		},
		Retry: middleware.RetryConfig{
			MaxRetries:          5,
			InitialInterval:     cfg.RetryInitialInterval,
			MaxInterval:         2 * time.Second,
			RandomizationFactor: 0.3,
		},
	}, watermill.NewStdLoggerWithOut(os.Stderr, false, false))
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	_, err = r.AddConsumerHandler("fault-handler", cfg.Topic, func(msg *message.Message) error {
		switch msg.Metadata.Get(faultKindKey) {
		case faultKindPermanent:
			return middleware.Permanent(errors.New("this message can never be handled"))
		case faultKindTransient:
			st, err := middleware.ReadRetryState(msg.Metadata)
			if err != nil {
				return middleware.Permanent(err)
			}
			if st.Attempts == 0 {
				return errors.New("transient failure of the first attempt")
			}
		}
		// One round trip records the success.
		_, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HIncrBy(ctx, cfg.Handled, msg.UUID, 1)
			p.HIncrBy(ctx, cfg.PerConsumer, cfg.Consumer, 1)
			return nil
		})
		return err
	}, router.WithConsumerGroup(cfg.Group))
	if err != nil {
		t.Fatalf("AddConsumerHandler: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()
	select {
	case <-r.Running():
	case err := <-runErr:
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(faultWait):
		t.Fatal("router did not start")
	}
	fmt.Println(faultChildReadyLine)
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("router.Run: %v", err)
	}
}

// faultChild is a consumer process running TestFaultChildProcess.
type faultChild struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{}
	done  chan struct{}
	// killed is set once the test ended the process (kill or stop);
	// sigkilled once it sent SIGKILL.
	killed    atomic.Bool
	sigkilled atomic.Bool
	logPath   string
}

// faultStartChild re-executes the test binary as a consumer process. The
// process is stopped (stdin closed, then SIGKILL) in the test's Cleanup, and
// stops by itself if the test process dies (its stdin closes).
func faultStartChild(t *testing.T, cfg faultChildConfig) *faultChild {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal child config: %v", err)
	}
	timeout := 30 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) + time.Minute
	}
	child := startChildProcess(t, "TestFaultChildProcess", timeout, "child-"+cfg.Consumer+"-*.log", faultChildEnv+"="+string(raw))
	cmd, stdin, stdout := child.cmd, child.stdin, child.stdout
	// The child has its own descriptor of the log.
	_ = child.log.Close()
	c := &faultChild{
		name:    cfg.Consumer,
		cmd:     cmd,
		stdin:   stdin,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		logPath: child.log.Name(),
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && sc.Text() == faultChildReadyLine {
				seen = true
				close(c.ready)
			}
		}
		_ = cmd.Wait()
		close(c.done)
	}()
	child.stopAtCleanup(t, c.done, 20*time.Second, func() {
		// The logs of processes the test killed on purpose would drown
		// the others (the soak test kills dozens).
		if !c.sigkilled.Load() {
			t.Logf("consumer process %s (pid %d) stderr, end:\n%s", c.name, cmd.Process.Pid, faultTail(c.logPath, 3000))
		}
	})
	return c
}

// faultTail returns the last n bytes of a file.
func faultTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(b) > n {
		b = append([]byte("..."), b[len(b)-n:]...)
	}
	return string(b)
}

func (c *faultChild) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitedUnexpectedly reports whether the process ended without being killed
// or stopped by the test.
func (c *faultChild) exitedUnexpectedly() bool {
	return c.exited() && !c.killed.Load()
}

func (c *faultChild) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-c.ready:
	case <-c.done:
		t.Fatalf("consumer process %s exited before it was ready (%v):\n%s", c.name, c.cmd.ProcessState, faultTail(c.logPath, 3000))
	case <-time.After(faultWait):
		t.Fatalf("consumer process %s not ready within %v", c.name, faultWait)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (c *faultChild) kill(t *testing.T) {
	t.Helper()
	c.killed.Store(true)
	c.sigkilled.Store(true)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("SIGKILL %s: %v", c.name, err)
	}
	select {
	case <-c.done:
	case <-time.After(faultWait):
		t.Fatalf("consumer process %s still alive %v after SIGKILL", c.name, faultWait)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("consumer process %s ended with %v before it was killed:\n%s", c.name, c.cmd.ProcessState, faultTail(c.logPath, 3000))
	}
}

// stop closes the process's stdin, so it closes its router, and waits for a
// clean exit.
func (c *faultChild) stop(t *testing.T) {
	t.Helper()
	c.killed.Store(true) // ended by the test
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(faultWait):
		t.Fatalf("consumer process %s did not exit within %v of its stdin closing", c.name, faultWait)
	}
	if !c.cmd.ProcessState.Success() {
		t.Errorf("consumer process %s exited with %v:\n%s", c.name, c.cmd.ProcessState, faultTail(c.logPath, 3000))
	}
}

// faultPendingIDs lists the entries of stream pending for consumer in group.
func faultPendingIDs(t *testing.T, client redis.UniversalClient, stream, group, consumer string) []string {
	t.Helper()
	p, err := client.XPendingExt(context.Background(), &redis.XPendingExtArgs{
		Stream: stream, Group: group, Start: "-", End: "+", Count: 1 << 20, Consumer: consumer,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("XPENDING %s %s %s: %v", stream, group, consumer, err)
	}
	ids := make([]string, len(p))
	for i, e := range p {
		ids[i] = e.ID
	}
	return ids
}

// faultEntryUUIDs maps the entry IDs of stream to message UUIDs.
func faultEntryUUIDs(t *testing.T, client redis.UniversalClient, stream string) map[string]string {
	t.Helper()
	entries, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		uuid, _ := e.Values[redrive.UUIDHeaderKey].(string)
		out[e.ID] = uuid
	}
	return out
}

// faultHandledCounts reads a Handled hash: UUID -> successful handlings.
func faultHandledCounts(t *testing.T, client redis.UniversalClient, key string) map[string]int {
	t.Helper()
	raw, err := client.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	out := make(map[string]int, len(raw))
	for k, v := range raw {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("HGETALL %s: %s=%q", key, k, v)
		}
		out[k] = n
	}
	return out
}

// faultLazy formats as what its function returns at formatting time, so a
// redistest.WaitFor message can tell the state when the wait timed out.
type faultLazy func() string

func (f faultLazy) String() string { return f() }

// --- (a) A consumer process killed in the middle of a batch ---

// TestFaultConsumerKilledMidBatch: two consumer processes share 10,000
// messages; one is killed with SIGKILL while it holds a batch. The other
// takes over what the dead one left pending: nothing is lost, and every
// message handled twice was in the dead consumer's in-flight window (read or
// handled, not yet acked in Redis), which MaxInFlight, ReadBatchSize and
// AckBatchSize bound.
func TestFaultConsumerKilledMidBatch(t *testing.T) {
	t.Parallel()
	began := time.Now()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	client := srv.Client(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("fault-kill-")
	const (
		group = "workers"
		n     = 10000
	)
	cfg := faultChildConfig{
		Addr:          srv.Addr(),
		Topic:         topic,
		Group:         group,
		Handled:       topic + ":test-handled",
		PerConsumer:   topic + ":test-per-consumer",
		MaxInFlight:   100,
		ReadBatchSize: 50,
		AckBatchSize:  50,
		MaxIdleTime:   faultMaxIdleTime,
		ClaimInterval: faultClaimInterval,
	}
	// What a consumer may hold pending in Redis at any time: the messages
	// holding an in-flight slot; the surplus of a read over two streams
	// (COUNT applies per stream: the topic and the group's retry stream);
	// and the settled messages whose acks wait in the acker (a batch being
	// sent and a full queue behind it).
	window := cfg.MaxInFlight + int(cfg.ReadBatchSize) + 2*cfg.AckBatchSize

	if err := client.XGroupCreateMkStream(ctx, topic, group, "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	victimCfg, survivorCfg := cfg, cfg
	victimCfg.Consumer, survivorCfg.Consumer = "victim", "survivor"
	victim := faultStartChild(t, victimCfg)
	survivor := faultStartChild(t, survivorCfg)
	victim.waitReady(t)
	survivor.waitReady(t)

	// Both consumers are ready: they share the work from the start.
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	published := make(map[string]bool, n)
	for start := 0; start < n; start += 500 {
		msgs := make([]*message.Message, 500)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("fault-kill-"+strconv.Itoa(start+i)))
			published[msgs[i].UUID] = true
		}
		if err := pub.Publish(topic, msgs...); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}

	handledBy := func(consumer string) int {
		v, err := client.HGet(ctx, cfg.PerConsumer, consumer).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("HGET: %v", err)
		}
		return v
	}
	// Kill it well into the work, while both consumers are busy.
	redistest.WaitFor(t, faultWait, func() bool { return handledBy("victim") >= n/10 },
		"the victim to handle %d messages (has %v)", n/10, faultLazy(func() string { return strconv.Itoa(handledBy("victim")) }))
	victim.kill(t)
	killedAt := time.Now()
	victimHandled := handledBy("victim")
	inFlight := faultPendingIDs(t, client, topic, group, "victim")
	if len(inFlight) == 0 {
		t.Fatalf("the victim held no pending entry when killed: the kill did not land in the middle of a batch")
	}
	if len(inFlight) > window {
		t.Errorf("the victim held %d pending entries when killed, more than its in-flight window of %d", len(inFlight), window)
	}

	var handled, pending int64
	redistest.WaitFor(t, faultWait, func() bool {
		var err error
		if handled, err = client.HLen(ctx, cfg.Handled).Result(); err != nil {
			t.Fatalf("HLEN: %v", err)
		}
		p, err := client.XPending(ctx, topic, group).Result()
		if err != nil {
			t.Fatalf("XPENDING: %v", err)
		}
		pending = p.Count
		return handled == n && pending == 0
	}, "the survivor to finish the work: %v", faultLazy(func() string {
		return fmt.Sprintf("%d of %d handled, %d pending", handled, n, pending)
	}))
	tookOver := time.Since(killedAt)
	survivor.stop(t)

	counts := faultHandledCounts(t, client, cfg.Handled)
	byEntry := faultEntryUUIDs(t, client, topic)
	window0 := map[string]bool{}
	for _, id := range inFlight {
		window0[byEntry[id]] = true
	}
	lost, duplicates, outside := 0, 0, 0
	for uuid := range published {
		switch k := counts[uuid]; {
		case k == 0:
			lost++
			if lost <= 5 {
				t.Errorf("message %s was never handled", uuid)
			}
		case k > 1:
			duplicates += k - 1
			if !window0[uuid] {
				outside++
				if outside <= 5 {
					t.Errorf("message %s was handled %d times but was not pending with the killed consumer", uuid, k)
				}
			}
		}
	}
	for uuid := range counts {
		if !published[uuid] {
			t.Errorf("handled a message that was never published: %s", uuid)
		}
	}
	if lost > 0 || outside > 0 {
		t.Errorf("%d of %d messages lost; %d duplicated messages outside the killed consumer's window", lost, n, outside)
	}
	if duplicates > len(inFlight) {
		t.Errorf("%d duplicates, more than the %d entries the killed consumer held", duplicates, len(inFlight))
	}
	t.Logf("FIGURES consumer killed mid-batch: messages=%d lost=%d duplicates=%d pending_with_killed_consumer=%d window_bound=%d "+
		"(MaxInFlight %d + ReadBatchSize %d + 2*AckBatchSize %d) handled_by_victim_before_kill=%d kills=1 "+
		"kill_to_all_done=%v total=%v",
		n, lost, duplicates, len(inFlight), window, cfg.MaxInFlight, cfg.ReadBatchSize, cfg.AckBatchSize, victimHandled,
		tookOver.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// --- In-process traffic for (b) and (c) ---

// faultPublisher publishes numbered messages (metadata faultSeqKey) in small
// batches until halted, and remembers which Publish calls succeeded.
type faultPublisher struct {
	pub   *redrive.Publisher
	topic string
	batch int
	pause time.Duration

	mu          sync.Mutex
	next        int
	acked       []int
	failed      []int
	failedCalls int

	stop     chan struct{}
	done     chan struct{}
	haltOnce sync.Once
}

func faultStartPublisher(t *testing.T, client redis.UniversalClient, topic string, batch int, pause time.Duration) *faultPublisher {
	t.Helper()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	p := &faultPublisher{pub: pub, topic: topic, batch: batch, pause: pause, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	t.Cleanup(p.halt)
	return p
}

func (p *faultPublisher) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		p.mu.Lock()
		first := p.next
		p.next += p.batch
		p.mu.Unlock()
		msgs := make([]*message.Message, p.batch)
		for i := range msgs {
			seq := strconv.Itoa(first + i)
			msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("fault-"+seq))
			msgs[i].Metadata.Set(faultSeqKey, seq)
		}
		err := p.pub.Publish(p.topic, msgs...)
		p.mu.Lock()
		for i := range msgs {
			if err == nil {
				p.acked = append(p.acked, first+i)
			} else {
				p.failed = append(p.failed, first+i)
			}
		}
		if err != nil {
			p.failedCalls++
		}
		p.mu.Unlock()
		pause := p.pause
		if err != nil {
			pause = 50 * time.Millisecond
		}
		select {
		case <-p.stop:
			return
		case <-time.After(pause):
		}
	}
}

// nextSeq is a number every message published from now on reaches.
func (p *faultPublisher) nextSeq() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

func (p *faultPublisher) failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failedCalls
}

// halt stops publishing and returns once the last Publish call returned.
func (p *faultPublisher) halt() {
	p.haltOnce.Do(func() {
		close(p.stop)
		<-p.done
		_ = p.pub.Close()
	})
}

// results returns the sequence numbers of acknowledged and failed publishes.
func (p *faultPublisher) results() (acked, failed []int, failedCalls int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.acked...), append([]int(nil), p.failed...), p.failedCalls
}

// faultReceiver records, per consumer group, how often each numbered
// message was handled. Every faultTransientEvery-th message fails its first
// attempt, so retries (requeue to the group's retry set, the delayed mover,
// the retry stream and its acks) run through the faults too.
type faultReceiver struct {
	mu       sync.Mutex
	counts   map[string]map[int]int
	top      map[string]int
	failures int
}

const faultTransientEvery = 10

func newFaultReceiver(groups []string) *faultReceiver {
	r := &faultReceiver{counts: map[string]map[int]int{}, top: map[string]int{}}
	for _, g := range groups {
		r.counts[g] = map[int]int{}
		r.top[g] = -1
	}
	return r
}

func (r *faultReceiver) handler(group string) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		seq, err := strconv.Atoi(msg.Metadata.Get(faultSeqKey))
		if err != nil {
			return middleware.Permanent(fmt.Errorf("message %s has no sequence number", msg.UUID))
		}
		if seq%faultTransientEvery == 0 {
			st, err := middleware.ReadRetryState(msg.Metadata)
			if err != nil {
				return middleware.Permanent(err)
			}
			if st.Attempts == 0 {
				r.mu.Lock()
				r.failures++
				r.mu.Unlock()
				return errors.New("transient failure of the first attempt")
			}
		}
		r.mu.Lock()
		r.counts[group][seq]++
		r.top[group] = max(r.top[group], seq)
		r.mu.Unlock()
		return nil
	}
}

// reached reports whether every group handled a message numbered seq or
// more.
func (r *faultReceiver) reached(seq int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, top := range r.top {
		if top < seq {
			return false
		}
	}
	return true
}

// missing returns, per group, how many of seqs were never handled, and one
// example.
func (r *faultReceiver) missing(seqs []int) (total int, summary string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for g, counts := range r.counts {
		n, example := 0, -1
		for _, s := range seqs {
			if counts[s] == 0 {
				n++
				if example < 0 {
					example = s
				}
			}
		}
		total += n
		parts = append(parts, fmt.Sprintf("group %s misses %d (first: %d)", g, n, example))
	}
	sort.Strings(parts)
	return total, strings.Join(parts, ", ")
}

// faultNotInStream returns how many of acked have no entry in the stream.
func faultNotInStream(entries map[int]int, acked []int) (n int, examples []int) {
	for _, s := range acked {
		if entries[s] == 0 {
			n++
			if len(examples) < 10 {
				examples = append(examples, s)
			}
		}
	}
	return n, examples
}

func (r *faultReceiver) failureCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures
}

// stats returns, per group, how many handlings were redeliveries of a
// stream entry already handled (entries maps a sequence number to its number
// of stream entries: a publish retried by the Redis client after a cut may
// have written its messages twice), and how many of failed (publishes that
// returned an error) were handled all the same.
func (r *faultReceiver) stats(entries map[int]int, failed []int) (redelivered map[string]int, failedButDelivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	redelivered = map[string]int{}
	for g, counts := range r.counts {
		redelivered[g] += 0
		for seq, k := range counts {
			if k > entries[seq] {
				redelivered[g] += k - entries[seq]
			}
		}
	}
	for _, s := range failed {
		for _, counts := range r.counts {
			if counts[s] > 0 {
				failedButDelivered++
				break
			}
		}
	}
	return redelivered, failedButDelivered
}

// faultStreamEntries counts the entries of stream per sequence number, and
// returns how many entries duplicate another.
func faultStreamEntries(t *testing.T, client redis.UniversalClient, stream string) (entries map[int]int, duplicated int) {
	t.Helper()
	list, err := client.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	entries = map[int]int{}
	for _, e := range list {
		msg, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Fatalf("entry %s does not decode: %v", e.ID, err)
		}
		seq, err := strconv.Atoi(msg.Metadata.Get(faultSeqKey))
		if err != nil {
			t.Fatalf("entry %s has no sequence number", e.ID)
		}
		entries[seq]++
		if entries[seq] > 1 {
			duplicated++
		}
	}
	return entries, duplicated
}

// faultLogger keeps the last lines a router logged and counts its errors,
// for the figures and for failure output.
type faultLogger struct {
	store  *faultLogStore
	fields watermill.LogFields
}

type faultLogStore struct {
	mu     sync.Mutex
	lines  []string
	errors int
	// claims counts the claimer's takeovers of idle entries: entries whose
	// consumer lost the reply of its read, or never acked them.
	claims int
}

func (l faultLogger) add(level, msg string, err error, fields watermill.LogFields) {
	line := fmt.Sprintf("%s %s: %s %v %v", time.Now().Format("15:04:05.000"), level, msg, err, l.fields.Add(fields))
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	if level == "error" {
		l.store.errors++
	}
	if strings.HasPrefix(msg, "Claimed entries") {
		if n, ok := fields["count"].(int); ok {
			l.store.claims += n
		}
	}
	l.store.lines = append(l.store.lines, line)
	if len(l.store.lines) > 400 {
		l.store.lines = l.store.lines[len(l.store.lines)-200:]
	}
}

func (l faultLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.add("error", msg, err, fields)
}
func (l faultLogger) Info(msg string, fields watermill.LogFields) { l.add("info", msg, nil, fields) }
func (faultLogger) Debug(string, watermill.LogFields)             {}
func (faultLogger) Trace(string, watermill.LogFields)             {}
func (l faultLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return faultLogger{store: l.store, fields: l.fields.Add(fields)}
}

func (l faultLogger) errorCount() int {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return l.store.errors
}

func (l faultLogger) claims() int {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return l.store.claims
}

// faultDialCounter is a go-redis hook that counts new connections: each
// connection cut while in use is dialled again.
type faultDialCounter struct{ dials atomic.Int64 }

func (h *faultDialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			h.dials.Add(1)
		}
		return conn, err
	}
}
func (h *faultDialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *faultDialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// faultRunRouter runs a redrive router with one handler per group on topic,
// each recording into recv, until the test ends.
func faultRunRouter(t *testing.T, client redis.UniversalClient, topic string, groups []string, recv *faultReceiver) faultLogger {
	t.Helper()
	logger := faultLogger{store: &faultLogStore{}}
	r, err := router.New(router.Config{
		Client:       client,
		RouterConfig: message.RouterConfig{CloseTimeout: 10 * time.Second},
		Subscriber: redrive.SubscriberConfig{
			MaxIdleTime:   faultMaxIdleTime,
			ClaimInterval: faultClaimInterval,
			CloseTimeout:  2 * time.Second,
		},
		Retry: middleware.RetryConfig{
			InitialInterval: 100 * time.Millisecond,
			MaxInterval:     time.Second,
		},
	}, logger)
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	for _, g := range groups {
		if _, err := r.AddConsumerHandler(g, topic, recv.handler(g)); err != nil {
			t.Fatalf("AddConsumerHandler: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-runErr:
		case <-time.After(faultWait):
			t.Errorf("router did not stop within %v", faultWait)
		}
		if t.Failed() {
			logger.store.mu.Lock()
			t.Logf("router log, end:\n%s", strings.Join(logger.store.lines, "\n"))
			logger.store.mu.Unlock()
		}
	})
	select {
	case <-r.Running():
	case err := <-runErr:
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(faultWait):
		t.Fatal("router did not start")
	}
	return logger
}

// faultWaitDelivered waits until every group handled every acknowledged
// publish and holds nothing more: no entry pending, no retry waiting.
// Nothing may have been poisoned: every message fails once at most.
func faultWaitDelivered(t *testing.T, check redis.UniversalClient, topic string, groups []string, recv *faultReceiver, acked []int) {
	t.Helper()
	ctx := context.Background()
	keys := redrive.KeysFor(topic)
	var status string
	redistest.WaitFor(t, faultWait, func() bool {
		missing, summary := recv.missing(acked)
		status = summary
		if missing > 0 {
			return false
		}
		for _, g := range groups {
			p, err := check.XPending(ctx, topic, g).Result()
			if err != nil {
				status = fmt.Sprintf("XPENDING %s: %v", g, err)
				return false
			}
			retry, err1 := check.XLen(ctx, keys.GroupRetry(g)).Result()
			delayed, err2 := check.ZCard(ctx, keys.GroupRetryDelayed(g)).Result()
			if err := errors.Join(err1, err2); err != nil {
				status = err.Error()
				return false
			}
			if p.Count > 0 || retry > 0 || delayed > 0 {
				status = fmt.Sprintf("group %s holds %d pending entries, %d in its retry stream, %d in its retry set", g, p.Count, retry, delayed)
				return false
			}
		}
		return true
	}, "every acknowledged message handled by every group, nothing held: %v", faultLazy(func() string { return status }))
	if n, err := check.XLen(ctx, keys.Poison).Result(); err != nil || n > 0 {
		t.Errorf("the poison stream holds %d entries (%v), want none", n, err)
	}
}

// faultOutcome is what a fault test found once its traffic stopped; String
// gives the figures every fault test logs.
type faultOutcome struct {
	acked, failed      []int
	failedCalls        int
	lost               int
	publishedTwice     int
	redelivered        map[string]int
	failedButDelivered int
	transientFailures  int
}

func (o faultOutcome) String() string {
	return fmt.Sprintf("acknowledged_publishes=%d lost=%d failed_publishes=%d (in %d calls, %d delivered anyway) "+
		"transient_failures=%d entries_written_twice_by_client_retries=%d duplicate_deliveries=%v",
		len(o.acked), o.lost, len(o.failed), o.failedCalls, o.failedButDelivered, o.transientFailures, o.publishedTwice, o.redelivered)
}

// faultSettle stops pub, waits until every group handled every acknowledged
// publish (faultWaitDelivered), and fails the test for each acknowledged
// publish missing from the stream; lostWhen, appended to that error, says
// how it could have been lost.
func faultSettle(t *testing.T, check redis.UniversalClient, topic string, groups []string, recv *faultReceiver, pub *faultPublisher, lostWhen string) faultOutcome {
	t.Helper()
	pub.halt()
	var o faultOutcome
	o.acked, o.failed, o.failedCalls = pub.results()
	faultWaitDelivered(t, check, topic, groups, recv, o.acked)

	o.lost, _ = recv.missing(o.acked)
	entries, publishedTwice := faultStreamEntries(t, check, topic)
	o.publishedTwice = publishedTwice
	if n, examples := faultNotInStream(entries, o.acked); n > 0 {
		t.Errorf("%d acknowledged publishes are not in the stream%s: %v", n, lostWhen, examples)
	}
	o.redelivered, o.failedButDelivered = recv.stats(entries, o.failed)
	o.transientFailures = recv.failureCount()
	return o
}

// --- (b) Redis killed and restarted under load ---

// TestFaultRedisKilledAndRestarted: Redis, with appendonly yes and
// appendfsync always, is killed with SIGKILL and restarted three times while
// a publisher and two consumer groups run. No acknowledged publish is lost,
// and the subscribers resume by themselves after each restart.
func TestFaultRedisKilledAndRestarted(t *testing.T) {
	t.Parallel()
	began := time.Now()
	srv := redistest.StartServer(t, redistest.ServerOptions{AppendOnly: true})
	topic := redistest.RandomTopic("fault-restart-")
	groups := []string{"g1", "g2"}
	recv := newFaultReceiver(groups)
	logger := faultRunRouter(t, srv.Client(t), topic, groups, recv)
	pub := faultStartPublisher(t, srv.Client(t), topic, 10, 10*time.Millisecond)

	const kills = 3
	var outages, resumes []time.Duration
	for k := 1; k <= kills; k++ {
		// Traffic flows in both groups.
		seq := pub.nextSeq() + 100
		redistest.WaitFor(t, faultWait, func() bool { return recv.reached(seq) }, "both groups to handle message %d before kill %d", seq, k)

		failures := pub.failures()
		srv.Kill()
		killedAt := time.Now()
		redistest.WaitFor(t, faultWait, func() bool { return pub.failures() > failures }, "the publisher to notice kill %d", k)
		srv.Restart()
		restartedAt := time.Now()
		outages = append(outages, restartedAt.Sub(killedAt))

		// Nothing is restarted or re-subscribed by the test.
		seq = pub.nextSeq()
		redistest.WaitFor(t, faultWait, func() bool { return recv.reached(seq) },
			"both groups to resume by themselves after restart %d (message %d)", k, seq)
		resumes = append(resumes, time.Since(restartedAt))
	}
	o := faultSettle(t, srv.Client(t), topic, groups, recv, pub, " after the restarts (handled before the kill, then lost by Redis)")
	t.Logf("FIGURES Redis killed and restarted: %s kills=%d outages=%v resumed_after=%v entries_claimed=%d router_errors_logged=%d total=%v",
		o, kills, faultRound(outages), faultRound(resumes), logger.claims(), logger.errorCount(), time.Since(began).Round(time.Millisecond))
}

func faultRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// --- (c) Connections cut in the middle of commands ---

// TestFaultConnectionsCut: every connection of the publisher and of two
// consumer groups goes through a TCP proxy, which cuts them all, again and
// again, while messages flow (a blocking read is always in flight, so every
// cut lands in the middle of a command). No acknowledged publish is lost,
// and no subscriber stays stuck: both groups handle every message and
// nothing stays pending.
func TestFaultConnectionsCut(t *testing.T) {
	t.Parallel()
	began := time.Now()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	proxy := redistest.StartProxy(t, srv.Addr())
	dials := &faultDialCounter{}
	viaProxy := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
		c.AddHook(dials)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	topic := redistest.RandomTopic("fault-cut-")
	groups := []string{"g1", "g2"}
	recv := newFaultReceiver(groups)
	logger := faultRunRouter(t, viaProxy(), topic, groups, recv)
	pub := faultStartPublisher(t, viaProxy(), topic, 10, 5*time.Millisecond)

	const cuts = 30
	for i := 1; i <= cuts; i++ {
		// Traffic flows again since the last cut.
		seq := pub.nextSeq()
		redistest.WaitFor(t, faultWait, func() bool { return recv.reached(seq) },
			"both groups to handle message %d before cut %d", seq, i)
		// At a random moment of the traffic (pacing, not an assertion).
		time.Sleep(rand.N(50 * time.Millisecond))
		proxy.CutAll()
	}
	seq := pub.nextSeq()
	redistest.WaitFor(t, faultWait, func() bool { return recv.reached(seq) }, "both groups to go on after the last cut (message %d)", seq)
	o := faultSettle(t, srv.Client(t), topic, groups, recv, pub, "")
	t.Logf("FIGURES connections cut: %s cuts=%d reconnections=%d entries_claimed_after_lost_replies=%d router_errors_logged=%d total=%v",
		o, cuts, dials.dials.Load(), logger.claims(), logger.errorCount(), time.Since(began).Round(time.Millisecond))
}
