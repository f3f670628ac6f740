package main

import (
	"context"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// The operating tools cannot hurt a new user: purge --all on an ordinary
// topic deletes nothing unless forced, poison list says it is not a poison
// topic, a missing stream fails, dry-run JSON says "would".
func TestOperatingToolsCannotHurt(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("cli-live-")
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("live order"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Del(context.Background(), topic) })

	out := ok(t, "poison", "purge", topic, "--all")
	contains(t, "purge --all of a live topic", out, "skipped", "not a poisoned message", "--internal", "Purged 0 messages of 1 selected", "1 skipped")
	if n := client.XLen(context.Background(), topic).Val(); n != 1 {
		t.Fatalf("purge --all deleted live messages: %d left", n)
	}
	out = ok(t, "poison", "list", topic)
	contains(t, "poison list of a live topic", out, "does not look like a poison topic", "--internal", "1 entry in")

	dry := run(t, nil, "poison", "purge", topic, "--all", "--force", "--dry-run", "--json")
	if dry.code != 0 || !strings.Contains(dry.stdout, `"would_purge": 1`) || strings.Contains(dry.stdout, `"purged"`) {
		t.Fatalf("purge --dry-run --json: exit %d\n%s", dry.code, dry.stdout)
	}
	out = ok(t, "poison", "purge", topic, "--all", "--force")
	contains(t, "purge --all --force", out, "Purged 1 message of 1 selected")
	if n := client.XLen(context.Background(), topic).Val(); n != 0 {
		t.Fatalf("purge --force left %d", n)
	}

	r := run(t, nil, "poison", "list", redistest.RandomTopic("cli-nothing-"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("poison list of a missing stream: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, nil, "poison", "show", "p", "not-an-id")
	if r.code != exitFailed || strings.Contains(r.stderr, "redrive/admin") || strings.Count(r.stderr, "redrive:") != 1 {
		t.Fatalf("error with a double prefix: %q", r.stderr)
	}
}

// REDIS_ADDR is read when REDIS_URL is not set; REDIS_URL comes first.
func TestRedisAddrEnvironment(t *testing.T) {
	t.Parallel()
	topic := redistest.RandomTopic("cli-addr-")
	r := run(t, []string{"REDIS_URL=", "REDIS_ADDR=" + redistest.Addr()}, "topic", "trim", topic)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("REDIS_ADDR alone: exit %d, stderr %q (want the topic not found, so Redis was reached)", r.code, r.stderr)
	}
	r = run(t, []string{"REDIS_ADDR=127.0.0.1:1"}, "topic", "trim", topic)
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("REDIS_URL before REDIS_ADDR: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, []string{"REDIS_URL=", "REDIS_ADDR=127.0.0.1:1"}, "topic", "trim", topic)
	if r.code != exitFailed || !strings.Contains(r.stderr, "cannot reach Redis at 127.0.0.1:1") {
		t.Fatalf("unreachable REDIS_ADDR: exit %d, stderr %q", r.code, r.stderr)
	}
}
