package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// The ACL under test is the one documented in docs/acl.md: the test reads
// the ACL SETUSER line from there, so the documentation cannot drift from
// what is tested.
const (
	aclDocPath     = "../docs/acl.md"
	aclDocUser     = "redrive-app"
	aclDocPassword = "CHANGE-ME"
)

// aclDocLine returns the documented ACL SETUSER line that creates the user
// (cluster false), or the one to add on a Redis Cluster (cluster true), with
// the password replaced, split into arguments.
func aclDocLine(t *testing.T, password string, cluster bool) []string {
	t.Helper()
	f, err := os.Open(aclDocPath)
	if err != nil {
		t.Fatalf("open the documented ACL: %v", err)
	}
	defer f.Close()
	prefix := "ACL SETUSER " + aclDocUser + " on "
	if cluster {
		prefix = "ACL SETUSER " + aclDocUser + " +"
	}
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, prefix) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%s holds %d lines %q..., want exactly 1", aclDocPath, len(lines), prefix)
	}
	args := strings.Fields(lines[0])
	for i, a := range args {
		if a == ">"+aclDocPassword {
			args[i] = ">" + password
		}
	}
	return args
}

// aclSetUser runs an ACL SETUSER line on a node.
func aclSetUser(t *testing.T, node *redis.Client, line []string) {
	t.Helper()
	args := make([]interface{}, len(line))
	for i, a := range line {
		args[i] = a
	}
	if err := node.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("%s on %s: %v", strings.Join(line, " "), node.Options().Addr, err)
	}
}

// aclNoGrantNeeded are commands Redis runs without an ACL grant (go-redis
// sends HELLO, with AUTH, on every new connection).
var aclNoGrantNeeded = []string{"hello", "auth"}

// aclGrantedNotExercised are commands the ACL grants that no flow of the
// test lasts long enough to send: the wake-up connection pings only after a
// minute of silence.
var aclGrantedNotExercised = []string{"ping"}

// aclCommands returns the commands (and subcommands) an ACL line allows
// one by one with +name.
func aclCommands(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "+") && !strings.HasPrefix(a, "+@") {
			out = append(out, strings.ToLower(a[1:]))
		}
	}
	sort.Strings(out)
	return out
}

// aclSetUp starts a server of the test's own, creates the documented user
// and returns an admin client (the default user) and a client logged in as
// the user.
func aclSetUp(t *testing.T) (admin, user *redis.Client, allowed []string, adminCalls *aclCallCounter) {
	t.Helper()
	ctx := context.Background()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	admin = srv.Client(t)
	adminCalls = &aclCallCounter{}
	admin.AddHook(adminCalls)
	password := watermill.NewShortUUID()
	line := aclDocLine(t, password, false)
	aclSetUser(t, admin, line)
	user = redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: aclDocUser, Password: password})
	t.Cleanup(func() { _ = user.Close() })
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "acl", "log", "reset").Err(); err != nil {
		t.Fatal(err)
	}
	return admin, user, aclCommands(line), adminCalls
}

// aclCallCounter counts a client's commands by the name INFO commandstats
// gives them, so the test's own commands can be told from redrive's.
type aclCallCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (h *aclCallCounter) count(cmds ...redis.Cmder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	for _, cmd := range cmds {
		h.calls[aclCommandName(cmd.Args())]++
	}
}

func (h *aclCallCounter) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.calls)
}

func (h *aclCallCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *aclCallCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.count(cmd)
		return err
	}
}

func (h *aclCallCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.count(cmds...)
		return err
	}
}

// aclCommandName is a command's name as INFO commandstats and ACL rules
// spell it: "xadd", or "xgroup|create" for a subcommand.
func aclCommandName(args []interface{}) string {
	name := strings.ToLower(fmt.Sprint(args[0]))
	switch name {
	case "acl", "client", "cluster", "command", "config", "function", "memory", "object", "pubsub", "script", "xgroup", "xinfo":
		if len(args) > 1 {
			name += "|" + strings.ToLower(fmt.Sprint(args[1]))
		}
	}
	return name
}

// TestACLLeastPrivilege runs every redrive flow as a user holding exactly
// the documented ACL, on a server of the test's own: no command is refused,
// and every command the ACL grants was needed (INFO commandstats), so the
// ACL is both sufficient and least. Then the same client tries to reach
// another application's keys through redrive and is refused, with nothing
// written.
func TestACLLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	admin, user, allowed, adminCalls := aclSetUp(t)

	aclRunEveryFlow(t, admin, user)

	// Nothing was refused, and every granted command was used.
	if log, err := admin.Do(ctx, "acl", "log").Slice(); err != nil || len(log) != 0 {
		t.Errorf("ACL LOG after the flows: %v entries (%v), want none: %v", len(log), err, log)
	}
	used := aclUsedCommands(t, admin, adminCalls)
	t.Logf("commands used by redrive: %s", strings.Join(used, " "))
	for _, c := range used {
		if !slices.Contains(allowed, c) && !slices.Contains(aclNoGrantNeeded, c) {
			t.Errorf("redrive used %q, which the documented ACL does not grant", c)
		}
	}
	for _, c := range allowed {
		if !slices.Contains(used, c) && !slices.Contains(aclGrantedNotExercised, c) {
			t.Errorf("the documented ACL grants %q, which no flow used", c)
		}
	}

	t.Run("OtherApplicationsKeys", func(t *testing.T) {
		aclOtherApplication(t, admin, user)
	})
}

// aclUsedCommands lists the commands run since CONFIG RESETSTAT by anyone
// but the admin client (whose own calls are subtracted).
func aclUsedCommands(t *testing.T, admin *redis.Client, adminCalls *aclCallCounter) []string {
	t.Helper()
	byAdmin := adminCalls.snapshot()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		if strings.Contains(stats, "rejected_calls=") && !strings.Contains(stats, "rejected_calls=0") {
			t.Errorf("command %s was rejected: %s", name, stats)
		}
		var calls int
		if _, err := fmt.Sscanf(stats, "calls=%d,", &calls); err != nil {
			t.Fatalf("commandstats %s: %q: %v", name, stats, err)
		}
		if calls > byAdmin[name] {
			used = append(used, name)
		}
	}
	sort.Strings(used)
	return used
}

// aclRunEveryFlow runs, as the restricted user, everything redrive does:
// publish (plain, delayed, with WAIT), consumer groups with retries,
// poison, delayed messages, an undecodable foreign entry, a consumer that
// dies holding a message (claimed by another, or poisoned when it exceeded
// MaxDeliveries), idle-consumer removal, fan-out, on a plain and on a
// hash-tagged topic.
func aclRunEveryFlow(t *testing.T, admin, user *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for _, topic := range []string{"app.orders", "{app.tagged}.events"} {
		app := startFlowApp(t, user, topic, flowOptions{Group: "billing", Inspect: admin})
		app.runAllPaths([]byte(" acl"))

		// A foreign entry without UUID or payload goes to the poison stream.
		if err := user.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]interface{}{"foreign": "x"}}).Err(); err != nil {
			t.Fatalf("XADD a foreign entry: %v", err)
		}
		redistest.WaitFor(t, waitTimeout, func() bool {
			n, _ := admin.XLen(ctx, app.poison).Result()
			return n == 3 // doomed, perm, foreign
		}, "the foreign entry in the poison stream")
	}

	// Fan-out reads the stream without a group.
	fan := newSubscriber(t, redrive.SubscriberConfig{Client: user}, nil)
	fanMsgs := collect(subscribe(t, fan, "app.orders"))
	pub := newPublisher(t, user)
	publish(t, pub, "app.orders", message.NewMessage(watermill.NewUUID(), []byte("fan-out")))
	fanMsgs.waitUnique(t, 1)

	// WAIT: no replica here, so it says so (and is not refused).
	waiter, err := redrive.NewPublisher(redrive.PublisherConfig{Client: user, WaitReplicas: 1, WaitTimeout: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	if err := waiter.Publish("app.orders", message.NewMessage(watermill.NewUUID(), nil)); !errors.Is(err, redrive.ErrNotReplicated) {
		t.Errorf("Publish with WaitReplicas 1 and no replica: %v, want ErrNotReplicated", err)
	}

	// A consumer dies holding a message: in group "claims" another consumer
	// claims it; in group "crash" (MaxDeliveries 1) it is poisoned. The
	// survivor then removes the dead consumer from the group.
	for group, maxDeliveries := range map[string]int64{"claims": 0, "crash": 1} {
		topic := "app.claims." + group
		config := redrive.SubscriberConfig{
			Client: user, ConsumerGroup: group, MaxDeliveries: maxDeliveries,
			MaxIdleTime: 300 * time.Millisecond, ClaimInterval: 100 * time.Millisecond,
			CloseTimeout: 100 * time.Millisecond, CheckConsumersInterval: 100 * time.Millisecond,
			ConsumerTimeout: 200 * time.Millisecond, TrimInterval: 100 * time.Millisecond,
		}
		dying := newSubscriber(t, config, nil)
		msgs := subscribe(t, dying, topic)
		held := message.NewMessage(watermill.NewUUID(), []byte("held"))
		publish(t, pub, topic, held)
		select {
		case <-msgs: // never acked
		case <-time.After(waitTimeout):
			t.Fatalf("group %s: the first consumer got nothing", group)
		}
		_ = dying.Close()

		survivor := newSubscriber(t, config, nil)
		got := collect(subscribe(t, survivor, topic))
		if maxDeliveries == 0 {
			got.waitUnique(t, 1)
		} else {
			redistest.WaitFor(t, waitTimeout, func() bool {
				n, _ := admin.XLen(ctx, redrive.KeysFor(topic).Poison).Result()
				return n == 1
			}, "group %s: the held message poisoned after MaxDeliveries", group)
		}
		redistest.WaitFor(t, waitTimeout, func() bool {
			c, err := admin.XInfoConsumers(ctx, topic, group).Result()
			return err == nil && len(c) == 1
		}, "group %s: the dead consumer removed", group)
	}
}

// aclOtherApplication: the user reaches another application's keys through
// no redrive path; each attempt fails with NOPERM and writes nothing.
func aclOtherApplication(t *testing.T, admin, user *redis.Client) {
	ctx := context.Background()
	pub := newPublisher(t, user)
	nothingAt := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			if n, err := admin.Exists(ctx, k).Result(); err != nil || n != 0 {
				t.Errorf("key %q exists (%d, %v) after a refused attempt", k, n, err)
			}
		}
	}
	wantNoPerm := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s: %v, want NOPERM", what, err)
		}
	}
	other := redrive.KeysFor("other.orders")

	wantNoPerm("publish to other.orders", pub.Publish("other.orders", message.NewMessage(watermill.NewUUID(), []byte("x"))))
	later := message.NewMessage(watermill.NewUUID(), []byte("later"))
	delay.Message(later, delay.For(time.Minute))
	wantNoPerm("publish delayed to other.orders", pub.Publish("other.orders", later))
	nothingAt(other.Stream, other.Delayed)

	for name, group := range map[string]string{"group": "billing", "fan-out": ""} {
		sub := newSubscriber(t, redrive.SubscriberConfig{Client: user, ConsumerGroup: group}, nil)
		_, err := sub.Subscribe(ctx, "other.orders")
		wantNoPerm("subscribe ("+name+") to other.orders", err)
	}
	nothingAt(other.Stream, other.GroupRetry("billing"))

	mover, err := redrive.NewDelayedMover(redrive.DelayedMoverConfig{Client: user, Delayed: other.Delayed, Stream: other.Stream}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = mover.MoveDue(ctx, time.Now())
	wantNoPerm("move other.orders' delayed messages", err)

	// A retry middleware told to poison into the other application's topic
	// cannot: the poison fails, the router nacks, and the message stays
	// pending in the app's own stream.
	app := startFlowApp(t, user, "app.misconfigured", flowOptions{PoisonTopic: "other.poison", Logger: watermill.NopLogger{}, Inspect: admin})
	doomed := newFlowMessage(flowPerm, nil)
	app.mustPublish(0, doomed)
	redistest.WaitFor(t, waitTimeout, func() bool { return len(app.callsOf(doomed.UUID)) >= 2 },
		"two attempts to poison into other.poison")
	nothingAt("other.poison")
	if n, _ := admin.XPending(ctx, "app.misconfigured", "flow").Result(); n == nil || n.Count != 1 {
		t.Errorf("the message whose poisoning was refused is not pending: %+v", n)
	}

	// A topic inside the pattern whose hash tag points elsewhere: the stream
	// is the app's, but its delayed set would be "{other.orders}:...", so
	// delayed messages and subscriptions are refused there too.
	sneaky := "app.{other.orders}"
	keys := redrive.KeysFor(sneaky)
	if err := pub.Publish(sneaky, message.NewMessage(watermill.NewUUID(), nil)); err != nil {
		t.Errorf("plain publish to %q (its stream matches app.*): %v", sneaky, err)
	}
	later = message.NewMessage(watermill.NewUUID(), []byte("later"))
	delay.Message(later, delay.For(time.Minute))
	wantNoPerm("publish delayed to "+sneaky, pub.Publish(sneaky, later))
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: user, ConsumerGroup: "g"}, nil)
	_, err = sub.Subscribe(ctx, sneaky)
	wantNoPerm("subscribe to "+sneaky, err)
	nothingAt(keys.Delayed, keys.GroupRetry("g"))

	// Every refusal was for a key (or the other topic's wake-up channel,
	// which a delayed publish announces to), never for a command the ACL
	// lacks.
	entries, err := admin.Do(ctx, "acl", "log", "128").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Error("ACL LOG holds no refusal")
	}
	for _, e := range entries {
		fields, _ := e.(map[interface{}]interface{})
		if reason := fields["reason"]; reason != "key" && reason != "channel" {
			t.Errorf("ACL LOG entry for a reason other than a key or channel: %v", e)
		}
	}
}

// clusterACL runs the flows of a consumer-group application as the
// documented user on a Redis Cluster (the user created on every node, with
// the documented cluster line added): nothing is refused on any node.
func clusterACL(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	password := watermill.NewShortUUID()
	for _, node := range cl.Nodes() {
		admin := node.Client(t)
		aclSetUser(t, admin, aclDocLine(t, password, false))
		aclSetUser(t, admin, aclDocLine(t, password, true))
	}
	user := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), Username: aclDocUser, Password: password})
	t.Cleanup(func() { _ = user.Close() })
	inspect := cl.Client(t)

	suffix := redistest.RandomTopic("")
	for _, topic := range []string{"app.orders." + suffix, "{app.tagged." + suffix + "}.events"} {
		app := startFlowApp(t, user, topic, flowOptions{Group: "billing", Inspect: inspect,
			Publisher: func(c *redrive.PublisherConfig) { c.WaitReplicas = 1 }})
		app.runAllPaths([]byte(" acl"))
		fan := newSubscriber(t, redrive.SubscriberConfig{Client: user}, nil)
		fanMsgs := collect(subscribe(t, fan, topic))
		app.mustPublish(0, newFlowMessage(flowOK, []byte("fan-out")))
		fanMsgs.waitUnique(t, 1)
	}
	for _, node := range cl.Nodes() {
		entries, err := node.Client(t).Do(ctx, "acl", "log").Slice()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("node %s refused: %v", node.Addr(), e)
		}
	}
}
