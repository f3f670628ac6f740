package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// binary is the redrive command built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "redrive-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "redrive")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build redrive:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the built command with args; env entries are added to a clean
// environment where REDIS_URL points at the test Redis.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=redis://" + redistest.Addr()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		exitErr, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run redrive %v: %v", args, err)
		}
		code = exitErr.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs the command and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("redrive %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs the command with --json and decodes its output into v.
func okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := ok(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("redrive %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, out)
		}
	}
}

var marshaller = redrive.DefaultMarshallerUnmarshaller{}

// addPoisoned writes a poison entry as the retry middleware would.
func addPoisoned(t *testing.T, client redis.UniversalClient, stream, id, topic, handler, reason, payload string) string {
	t.Helper()
	msg := message.NewMessage(watermill.NewUUID(), []byte(payload))
	msg.Metadata.Set(wmiddleware.ReasonForPoisonedKey, reason)
	msg.Metadata.Set(wmiddleware.PoisonedTopicKey, topic)
	msg.Metadata.Set(wmiddleware.PoisonedHandlerKey, handler)
	msg.Metadata.Set(middleware.MetadataAttempts, "4")
	msg.Metadata.Set(middleware.MetadataFirstFailedAt, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))
	msg.Metadata.Set(middleware.MetadataLastFailedAt, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano))
	msg.Metadata.Set(middleware.MetadataLastError, "dial tcp: connection refused")
	msg.Metadata.Set(middleware.MetadataHistory, `[{"n":1,"at":"2024-05-01T12:00:00Z","err":"dial tcp: connection refused","delay":1000000000}]`)
	fields, err := marshaller.Marshal(stream, msg)
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		id = "*"
	}
	got, err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, ID: id, Values: fields}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func createGroup(t *testing.T, client redis.UniversalClient, topic, group string) {
	t.Helper()
	for _, s := range []string{topic, redrive.KeysFor(topic).GroupRetry(group)} {
		if err := client.XGroupCreateMkStream(context.Background(), s, group, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	out := ok(t, "--help")
	contains(t, "redrive --help", out, "topic info", "poison requeue", "delayed run-now", "Examples:", "REDIS_URL")
	contains(t, "redrive help", ok(t, "help"), "Commands:")
	contains(t, "redrive poison --help", ok(t, "poison", "--help"), "poison list", "poison show", "poison requeue", "poison purge")
	contains(t, "redrive help poison requeue", ok(t, "help", "poison", "requeue"), "--dry-run", "Examples:")
	for _, c := range [][]string{
		{"topic", "info"}, {"poison", "list"}, {"poison", "show"}, {"poison", "requeue"},
		{"poison", "purge"}, {"delayed", "list"}, {"delayed", "run-now"},
	} {
		for _, flag := range []string{"--help", "-h"} {
			out := ok(t, c[0], c[1], flag)
			contains(t, "redrive "+strings.Join(c, " ")+" "+flag, out, "Usage: redrive "+c[0]+" "+c[1], "Examples:\n  redrive "+c[0]+" "+c[1], "--redis")
		}
	}
}

func TestBadCommandLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"poison"}, "no subcommand given (list, purge, requeue, show)"},
		{[]string{"poison", "lst", "p"}, `unknown command "poison lst"`},
		{[]string{"poison", "list"}, "missing <poison-topic>"},
		{[]string{"poison", "list", "a", "b"}, `unexpected argument "b"`},
		{[]string{"poison", "list", "p", "--bogus"}, "unknown flag --bogus"},
		{[]string{"poison", "list", "p", "--limit", "0"}, "--limit must be at least 1"},
		{[]string{"poison", "list", "p", "--limit", "many"}, `invalid value "many" for flag --limit`},
		{[]string{"poison", "show", "p"}, "missing <id>"},
		{[]string{"poison", "requeue", "p"}, "choose messages with --id, --all"},
		{[]string{"poison", "requeue", "p", "--id", "x"}, `"x" is not a stream entry ID`},
		{[]string{"poison", "requeue", "p", "--all", "--id", "1-1"}, "both All and IDs"},
		{[]string{"poison", "requeue", "p", "--all", "--group", "g", "--to-stream"}, "give --group or --to-stream, not both"},
		{[]string{"poison", "purge", "p", "--older-than", "7x"}, `"7x" is not an age like`},
		{[]string{"poison", "purge", "p"}, "choose messages"},
		{[]string{"delayed", "run-now", "t"}, "give either --id or --all"},
		{[]string{"delayed", "run-now", "t", "--all", "--id", "x"}, "give either --id or --all"},
		{[]string{"topic", "info"}, "missing <topic>"},
		{[]string{"--redis", "http://localhost", "topic", "info", "t"}, `unknown scheme "http"`},
		{[]string{"help", "nothing"}, `no help for "nothing"`},
	} {
		r := run(t, nil, tc.args...)
		if r.code != exitUsage {
			t.Errorf("redrive %v: exit %d, want %d\nstderr: %s", tc.args, r.code, exitUsage, r.stderr)
		}
		if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("redrive %v: stderr %q, want %q and a pointer to --help", tc.args, r.stderr, tc.want)
		}
		if r.stdout != "" {
			t.Errorf("redrive %v: printed %q on stdout", tc.args, r.stdout)
		}
	}
}

func TestConnectionFailures(t *testing.T) {
	t.Parallel()
	port := redistest.FreePort(t)
	r := run(t, nil, "--redis", "redis://app:hunter2@127.0.0.1:"+strconv.Itoa(port), "topic", "info", "t")
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot reach Redis at redis://app:xxxxx@127.0.0.1:") {
		t.Errorf("unreachable Redis: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("the password leaked: %q", r.stderr)
	}

	// A server with a password and an ACL user: the URL's credentials are
	// used, and a wrong password fails clearly.
	// (Set after the start: the helper's readiness PING has no password.)
	ctx := context.Background()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	topic := redistest.RandomTopic("cli-auth-")
	c := srv.Client(t)
	c.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]any{"payload": "x"}})
	if err := c.Do(ctx, "ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "requirepass", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}

	for _, url := range []string{"redis://:s3cret@" + srv.Addr(), "redis://alice:wonderland@" + srv.Addr() + "/0"} {
		r = run(t, []string{"REDIS_URL=" + url}, "topic", "info", topic)
		if r.code != 0 || !strings.Contains(r.stdout, "1 entries") {
			t.Errorf("REDIS_URL=%s: exit %d\n%s%s", url, r.code, r.stdout, r.stderr)
		}
	}
	r = run(t, nil, "--redis", "redis://alice:wrong@"+srv.Addr(), "topic", "info", topic)
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot reach Redis") || strings.Contains(r.stderr, "wrong") {
		t.Errorf("wrong password: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestTopicInfo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("cli-info-")
	keys := redrive.KeysFor(topic)
	createGroup(t, client, topic, "billing")
	createGroup(t, client, topic, "audit")
	for range 4 {
		client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]any{redrive.UUIDHeaderKey: watermill.NewUUID(), "payload": "p", "metadata": "\x80"}})
	}
	client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "worker-1", Streams: []string{topic, ">"}, Count: 3})
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	m := message.NewMessage(watermill.NewUUID(), nil)
	delay.Message(m, delay.For(time.Hour))
	if err := pub.Publish(topic, m); err != nil {
		t.Fatal(err)
	}
	addPoisoned(t, client, keys.Poison, "", topic, "", redrive.ReasonUndecodable, "")

	out := ok(t, "topic", "info", topic)
	contains(t, "topic info", out, "Topic:", topic, "4 entries", "1 waiting, next due in", "1 in "+keys.Poison,
		"GROUP", "PENDING", "LAG", "OLDEST PENDING", "billing", "audit", "worker-1")
	// Aligned: the header and the rows start their columns at the same place.
	lines := strings.Split(out, "\n")
	var header, billing string
	for _, l := range lines {
		if strings.HasPrefix(l, "GROUP ") && strings.Contains(l, "LAG") {
			header = l
		}
		if strings.HasPrefix(l, "billing ") && billing == "" {
			billing = l
		}
	}
	if header == "" || billing == "" || strings.Index(header, "PENDING") != strings.Index(billing, "3") {
		t.Errorf("table not aligned:\n%s\n%s", header, billing)
	}

	var info admin.TopicInfo
	okJSON(t, &info, "topic", "info", topic)
	if info.Length != 4 || len(info.Groups) != 2 || info.Groups[1].Name != "billing" || info.Groups[1].Pending != 3 ||
		info.Groups[1].Lag != 1 || info.Delayed.Count != 1 || info.Poisoned != 1 {
		t.Errorf("topic info --json = %+v", info)
	}

	r := run(t, nil, "topic", "info", redistest.RandomTopic("cli-missing-"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Errorf("missing topic: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPoisonListAndShow(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	stream := redistest.RandomTopic("cli-poison-")
	topic := redistest.RandomTopic("cli-orders-")
	oldID := strconv.FormatInt(time.Now().Add(-3*time.Hour).UnixMilli(), 10) + "-0"
	id1 := addPoisoned(t, client, stream, oldID, topic, "billing", "max retries exceeded (5)", "card 4242 4242")
	id2 := addPoisoned(t, client, stream, "", "other", "shipping", "permanent error: bad address", "{\"name\":\"Ann\"}")

	out := ok(t, "poison", "list", stream)
	contains(t, "poison list", out, "ID", "REASON", "LAST ERROR", id1, id2, topic, "billing", "max retries exceeded (5)",
		"dial tcp: connection refused", "2 shown; 2 entries in "+stream)
	if strings.Contains(out, "4242") || strings.Contains(out, "Ann") {
		t.Errorf("poison list shows payloads:\n%s", out)
	}
	out = ok(t, "poison", "list", stream, "--topic", topic)
	if !strings.Contains(out, id1) || strings.Contains(out, id2) {
		t.Errorf("--topic filter:\n%s", out)
	}
	out = ok(t, "poison", "list", stream, "--older-than", "2h")
	if !strings.Contains(out, id1) || strings.Contains(out, id2) {
		t.Errorf("--older-than filter:\n%s", out)
	}
	out = ok(t, "poison", "list", stream, "--limit", "1")
	contains(t, "poison list --limit 1", out, "More: redrive poison list "+stream+" --after "+id1)

	var list admin.PoisonedList
	okJSON(t, &list, "poison", "list", stream, "--reason", "PERMANENT")
	if len(list.Messages) != 1 || list.Messages[0].ID != id2 || list.Messages[0].Handler != "shipping" || list.Messages[0].Attempts != 4 || list.Total != 2 {
		t.Errorf("poison list --json = %+v", list)
	}

	out = ok(t, "poison", "show", stream, id1)
	contains(t, "poison show", out, "Reason:", "max retries exceeded (5)", "Original topic:", topic, "Attempts:", "4",
		"Retry history:", "Metadata:", "reason_poisoned", "not shown (add --payload")
	if strings.Contains(out, "4242") {
		t.Errorf("poison show without --payload shows it:\n%s", out)
	}
	out = ok(t, "poison", "show", stream, id1, "--payload")
	contains(t, "poison show --payload", out, "Payload (14 bytes):\ncard 4242 4242")
	var shown admin.PoisonedMessage
	okJSON(t, &shown, "poison", "show", stream, id2, "--payload")
	if string(shown.Payload) != `{"name":"Ann"}` || shown.Metadata["topic_poisoned"] != "other" {
		t.Errorf("poison show --json = %+v", shown)
	}

	r := run(t, nil, "poison", "show", stream, "1-1")
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Errorf("show of a missing ID: exit %d, stderr %q", r.code, r.stderr)
	}

	// --internal names the topic's own poison stream.
	internalID := addPoisoned(t, client, redrive.KeysFor(topic).Poison, "", topic, "", redrive.ReasonExceededMaxDeliveries, "")
	out = ok(t, "poison", "list", topic, "--internal")
	contains(t, "poison list --internal", out, internalID, redrive.ReasonExceededMaxDeliveries)
}

func TestPoisonRequeueAndPurge(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	stream := redistest.RandomTopic("cli-rq-poison-")
	topic := redistest.RandomTopic("cli-rq-")
	createGroup(t, client, topic, "billing")
	retryStream := redrive.KeysFor(topic).GroupRetry("billing")
	id1 := addPoisoned(t, client, stream, "", topic, "billing", "max retries exceeded", "a")
	id2 := addPoisoned(t, client, stream, "", topic, "unknown-handler", "permanent error", "b")
	id3 := addPoisoned(t, client, stream, "", topic, "billing", "timeout", "c")

	out := ok(t, "poison", "requeue", stream, "--all", "--dry-run")
	contains(t, "requeue --dry-run", out, id1, id2, id3, "would-requeue", topic+" group billing", topic+" (topic stream, every group)",
		"Dry run: would requeue 3 messages of 3 selected", "nothing changed")
	if n := client.XLen(context.Background(), stream).Val(); n != 3 {
		t.Fatalf("dry run changed the poison stream: %d left", n)
	}

	out = ok(t, "poison", "requeue", stream, "--id", id1, "--reason", "max retries")
	contains(t, "requeue --id", out, "Requeued 1 message of 1 selected", "1 → "+topic+" group billing")
	if n := client.XLen(context.Background(), retryStream).Val(); n != 1 {
		t.Errorf("retry stream has %d, want 1", n)
	}

	var res admin.RequeueResult
	okJSON(t, &res, "poison", "requeue", stream, "--reason", "TIMEOUT")
	if res.Requeued != 1 || len(res.Messages) != 1 || res.Messages[0].ID != id3 || res.Messages[0].Group != "billing" || res.Messages[0].NewID == "" {
		t.Errorf("requeue --json = %+v", res)
	}

	r := run(t, nil, "poison", "requeue", stream, "--id", id1)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found: "+id1) {
		t.Errorf("requeue of a requeued ID: exit %d, stderr %q", r.code, r.stderr)
	}

	var purge admin.PurgeResult
	okJSON(t, &purge, "poison", "purge", stream, "--all", "--dry-run")
	if !purge.DryRun || purge.Purged != 1 || purge.Messages[0].ID != id2 {
		t.Errorf("purge --dry-run --json = %+v", purge)
	}
	out = ok(t, "poison", "purge", stream, "--topic", topic, "--older-than", "1ms")
	contains(t, "purge", out, "Purged 1 message of 1 selected")
	if n := client.XLen(context.Background(), stream).Val(); n != 0 {
		t.Errorf("poison stream keeps %d", n)
	}
}

func TestDelayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("cli-delayed-")
	createGroup(t, client, topic, "billing")
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var uuids []string
	for i := range 3 {
		m := message.NewMessage(watermill.NewUUID(), nil)
		delay.Message(m, delay.For(time.Duration(i+1)*time.Hour))
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
		uuids = append(uuids, m.UUID)
	}

	out := ok(t, "delayed", "list", topic)
	contains(t, "delayed list", out, "SET", "DUE", "UUID", "ATTEMPTS", "3 shown of 3 delayed messages")
	if i0, i2 := strings.Index(out, uuids[0]), strings.Index(out, uuids[2]); i0 < 0 || i2 < i0 {
		t.Errorf("delayed list is not soonest first:\n%s", out)
	}
	if !strings.Contains(out, "  in 1h") && !strings.Contains(out, "  in 59m") {
		t.Errorf("delayed list does not show the due time:\n%s", out)
	}
	var lists []admin.DelayedList
	okJSON(t, &lists, "delayed", "list", topic)
	if len(lists) != 2 || lists[0].Total != 3 || lists[1].Set.Group != "billing" || lists[1].Total != 0 {
		t.Fatalf("delayed list --json = %+v", lists)
	}
	out = ok(t, "delayed", "list", topic, "--group", "billing")
	contains(t, "delayed list --group", out, "No delayed messages")

	id := lists[0].Messages[1].ID
	out = ok(t, "delayed", "run-now", topic, "--id", id)
	contains(t, "run-now --id", out, id, uuids[1], "Moved 1 delayed messages")
	if n := client.XLen(ctx, topic).Val(); n != 1 {
		t.Errorf("stream has %d entries, want the one run now", n)
	}
	r := run(t, nil, "delayed", "run-now", topic, "--id", id)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found: "+id) {
		t.Errorf("run-now of a moved ID: exit %d, stderr %q", r.code, r.stderr)
	}
	var report struct {
		Moved int `json:"moved"`
	}
	okJSON(t, &report, "delayed", "run-now", topic, "--all")
	if report.Moved != 2 || client.XLen(ctx, topic).Val() != 3 {
		t.Errorf("run-now --all moved %d", report.Moved)
	}
}

// Cluster seeds, as a comma-separated list or as ParseClusterURL's addr
// parameters, reach every node.
func TestClusterSeeds(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, redistest.ClusterOptions{ReplicasPerMaster: -1})
	client := cluster.Client(t)
	// Topics on each of the three masters.
	var topics []string
	masters := map[string]bool{}
	for len(masters) < 3 {
		topic := redistest.RandomTopic("cli-cluster-")
		addr := cluster.MasterFor(topic).Addr()
		if masters[addr] {
			continue
		}
		masters[addr] = true
		topics = append(topics, topic)
		addPoisoned(t, client, redrive.KeysFor(topic).Poison, "", topic, "", "x", "")
	}
	addrs := cluster.Addrs()
	for _, spec := range []string{
		strings.Join(addrs, ","),
		"redis://" + addrs[0] + "?addr=" + addrs[1],
	} {
		for _, topic := range topics {
			r := run(t, nil, "--redis", spec, "poison", "list", topic, "--internal")
			if r.code != 0 || !strings.Contains(r.stdout, "1 shown") {
				t.Errorf("--redis %s poison list: exit %d\n%s%s", spec, r.code, r.stdout, r.stderr)
			}
		}
	}
	// One seed with --cluster.
	r := run(t, nil, "--redis", addrs[0], "--cluster", "poison", "requeue", topics[2], "--internal", "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "Requeued 1") {
		t.Errorf("--cluster requeue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
