package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// waitTimeout bounds every wait for a condition. It is generous because the
// machine has two cores shared with Redis and -race; a passing test never
// waits this long.
const waitTimeout = 30 * time.Second

// logRecord is one line logged through a recordingLogger.
type logRecord struct {
	level  string
	msg    string
	err    error
	fields watermill.LogFields
}

// logStore is shared by a recordingLogger and every logger derived from it
// with With.
type logStore struct {
	mu      sync.Mutex
	records []logRecord
	// echoErrors writes error lines to stderr too, so a failing test shows
	// what the subscriber complained about.
	echoErrors bool
}

// recordingLogger is a watermill.LoggerAdapter that keeps every line, so tests
// can count what was logged (an error log that floods is a bug).
type recordingLogger struct {
	store  *logStore
	fields watermill.LogFields
}

func newRecordingLogger() *recordingLogger {
	return &recordingLogger{store: &logStore{echoErrors: true}}
}

func (l *recordingLogger) add(level, msg string, err error, fields watermill.LogFields) {
	all := l.fields.Add(fields)
	l.store.mu.Lock()
	l.store.records = append(l.store.records, logRecord{level: level, msg: msg, err: err, fields: all})
	echo := l.store.echoErrors && level == "error"
	l.store.mu.Unlock()
	if echo {
		fmt.Fprintf(os.Stderr, "redrive error log: %s: %v %v\n", msg, err, all)
	}
}

func (l *recordingLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.add("error", msg, err, fields)
}
func (l *recordingLogger) Info(msg string, fields watermill.LogFields) {
	l.add("info", msg, nil, fields)
}
func (l *recordingLogger) Debug(msg string, fields watermill.LogFields) {
	l.add("debug", msg, nil, fields)
}
func (l *recordingLogger) Trace(msg string, fields watermill.LogFields) {
	l.add("trace", msg, nil, fields)
}
func (l *recordingLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &recordingLogger{store: l.store, fields: l.fields.Add(fields)}
}

// matching returns the lines of level whose message contains substr.
func (l *recordingLogger) matching(level, substr string) []logRecord {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	var out []logRecord
	for _, r := range l.store.records {
		if r.level == level && strings.Contains(r.msg, substr) {
			out = append(out, r)
		}
	}
	return out
}

// logOnFailure prints everything logged when the test failed, to show what
// the subscriber went through.
func logOnFailure(t *testing.T, l *recordingLogger) {
	if !t.Failed() {
		return
	}
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	for _, r := range l.store.records {
		t.Logf("%s: %s: %v %v", r.level, r.msg, r.err, r.fields)
	}
}

func (l *recordingLogger) count(level string) int {
	return len(l.matching(level, ""))
}

// errorsOnlyLogger prints errors and drops the rest: the universal suite
// creates thousands of subscribers, and their Info lines would drown the
// output of a failing run.
type errorsOnlyLogger struct{ fields watermill.LogFields }

func (l errorsOnlyLogger) Error(msg string, err error, fields watermill.LogFields) {
	fmt.Fprintf(os.Stderr, "redrive error log: %s: %v %v\n", msg, err, l.fields.Add(fields))
}
func (errorsOnlyLogger) Info(string, watermill.LogFields)  {}
func (errorsOnlyLogger) Debug(string, watermill.LogFields) {}
func (errorsOnlyLogger) Trace(string, watermill.LogFields) {}
func (l errorsOnlyLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return errorsOnlyLogger{fields: l.fields.Add(fields)}
}

func newPublisher(t *testing.T, client redis.UniversalClient) *redrive.Publisher {
	t.Helper()
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, errorsOnlyLogger{})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func newSubscriber(t *testing.T, config redrive.SubscriberConfig, logger watermill.LoggerAdapter) *redrive.Subscriber {
	t.Helper()
	if logger == nil {
		logger = errorsOnlyLogger{}
	}
	sub, err := redrive.NewSubscriber(config, logger)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func subscribe(t *testing.T, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	return msgs
}

func publish(t *testing.T, pub message.Publisher, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

// newMessages makes n messages with payload prefix-i and metadata i=i.
func newMessages(prefix string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%s-%d", prefix, i)))
		msgs[i].Metadata.Set("i", fmt.Sprint(i))
	}
	return msgs
}

func uuids(msgs []*message.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
	}
	return ids
}

// collector drains a message channel in the background, acking every
// message, and keeps what it saw.
type collector struct {
	mu       sync.Mutex
	order    []string
	byUUID   map[string]*message.Message
	times    map[string]int
	received map[string]time.Time
	done     chan struct{}
}

func collect(msgs <-chan *message.Message) *collector {
	c := &collector{
		byUUID:   map[string]*message.Message{},
		times:    map[string]int{},
		received: map[string]time.Time{},
		done:     make(chan struct{}),
	}
	go func() {
		defer close(c.done)
		for m := range msgs {
			now := time.Now()
			c.mu.Lock()
			c.order = append(c.order, m.UUID)
			if _, ok := c.byUUID[m.UUID]; !ok {
				c.received[m.UUID] = now
			}
			c.byUUID[m.UUID] = m
			c.times[m.UUID]++
			c.mu.Unlock()
			m.Ack()
		}
	}()
	return c
}

func (c *collector) unique() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byUUID)
}

func (c *collector) has(uuid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.byUUID[uuid]
	return ok
}

func (c *collector) get(uuid string) *message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUUID[uuid]
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.byUUID))
	for id := range c.byUUID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (c *collector) deliveries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}

// waitUnique waits until the collector saw n distinct messages.
func (c *collector) waitUnique(t *testing.T, n int) {
	t.Helper()
	redistest.WaitFor(t, waitTimeout, func() bool { return c.unique() >= n }, "%d distinct messages", n)
}

// sameSet fails the test unless got and want hold the same strings.
func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, ",") != strings.Join(w, ",") {
		t.Fatalf("%s: got %d %v, want %d %v", what, len(g), g, len(w), w)
	}
}

// pendingCount is the number of entries in group's pending list on stream.
func pendingCount(t *testing.T, client redis.UniversalClient, stream, group string) int64 {
	t.Helper()
	p, err := client.XPending(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", stream, group, err)
	}
	return p.Count
}

// pendingEntries lists group's pending entries on stream.
func pendingEntries(t *testing.T, client redis.UniversalClient, stream, group string) []redis.XPendingExt {
	t.Helper()
	p, err := client.XPendingExt(context.Background(), &redis.XPendingExtArgs{
		Stream: stream, Group: group, Start: "-", End: "+", Count: 100000,
	}).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s - + : %v", stream, group, err)
	}
	return p
}

// deleteKeysAfter removes the test's keys from the shared server when the
// test ends, so the shared server does not fill up.
func deleteKeysAfter(t *testing.T, client redis.UniversalClient, topic string) {
	t.Cleanup(func() {
		keys := redrive.KeysFor(topic)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Every redrive key of a topic starts like its delayed set.
		found, _ := client.Keys(ctx, strings.TrimSuffix(keys.Delayed, ":delayed")+"*").Result()
		_ = client.Del(ctx, append(found, topic)...).Err()
	})
}

// childProcess is this test binary re-run as a child process that runs only
// one test, for tests that kill processes.
type childProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	// log holds the child's stderr.
	log *os.File
}

// startChildProcess starts the child running only testName, with env added
// to this process's environment and the given -test.timeout.
func startChildProcess(t *testing.T, testName string, timeout time.Duration, logPattern string, env ...string) childProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^"+testName+"$", "-test.count=1", "-test.timeout="+timeout.Round(time.Second).String())
	cmd.Env = append(os.Environ(), env...)
	logFile, err := os.CreateTemp(t.TempDir(), logPattern)
	if err != nil {
		t.Fatalf("child log: %v", err)
	}
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child process %s: %v", testName, err)
	}
	return childProcess{cmd: cmd, stdin: stdin, stdout: stdout, log: logFile}
}

// stopAtCleanup ends the child when the test ends: it closes the child's
// stdin (the child's signal to finish), waits up to grace for exited (closed
// once the child was reaped), kills it past that, and calls report if the
// test failed.
func (c childProcess) stopAtCleanup(t *testing.T, exited <-chan struct{}, grace time.Duration, report func()) {
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-exited:
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			report()
		}
		_ = c.log.Close()
	})
}

// logStderr logs all the child wrote to its stderr.
func (c childProcess) logStderr(t *testing.T) {
	b, _ := os.ReadFile(c.log.Name())
	t.Logf("helper process %d stderr:\n%s", c.cmd.Process.Pid, b)
}
