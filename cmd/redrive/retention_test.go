package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/redistest"
)

// runWithInput is run with text on the command's stdin.
func runWithInput(t *testing.T, input string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=redis://" + redistest.Addr()}
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run redrive %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func TestTopicTrimAndGroupDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("cli-trim-")
	createGroup(t, client, topic, "current")
	createGroup(t, client, topic, "old-deploy")
	redistest.AddEntriesAt(t, client, topic, 1000, 5)
	redistest.Ack(t, client, topic, "current", redistest.ReadGroup(t, client, topic, "current", 10)...)

	out := ok(t, "topic", "trim", topic, "--dry-run", "--retain", "0")
	contains(t, "topic trim --dry-run", out, "Dry run: would trim 0 entries", "nothing removed", "old-deploy", "HOLDS BACK")
	var dry admin.TrimReport
	okJSON(t, &dry, "topic", "trim", topic, "--dry-run")
	if !dry.DryRun || dry.WouldTrim != 0 || dry.Length != 5 {
		t.Errorf("topic trim --dry-run --json = %+v", dry)
	}
	out = ok(t, "topic", "info", topic, "--retain", "0")
	contains(t, "topic info", out, "HOLDS BACK", "5 since")

	// Refused without confirmation; the wrong answer deletes nothing.
	r := runWithInput(t, "", "group", "delete", topic, "old-deploy")
	if r.code != exitFailed || !strings.Contains(r.stderr, "not confirmed") || !strings.Contains(r.stderr, "Type the group name") {
		t.Fatalf("group delete without an answer: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runWithInput(t, "yes\n", "group", "delete", topic, "old-deploy")
	if r.code != exitFailed {
		t.Fatalf("group delete with a wrong answer: exit %d", r.code)
	}
	if groups, _ := client.XInfoGroups(ctx, topic).Result(); len(groups) != 2 {
		t.Fatalf("groups after refused deletes: %v", groups)
	}
	r = runWithInput(t, "old-deploy\n", "group", "delete", topic, "old-deploy")
	if r.code != 0 || !strings.Contains(r.stdout, "Deleted consumer group old-deploy") {
		t.Fatalf("group delete confirmed: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, nil, "group", "delete", topic, "old-deploy", "--yes")
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("deleting it again: exit %d, stderr %q", r.code, r.stderr)
	}

	out = ok(t, "topic", "trim", topic, "--retain", "0")
	contains(t, "topic trim", out, "Trimmed 5 entries", "0 entries left", "No consumer group holds")
	r = run(t, nil, "topic", "trim", redistest.RandomTopic("cli-none-"))
	if r.code != exitFailed || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("trim of a missing topic: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, nil, "topic", "trim", topic, "--retain", "soon")
	if r.code != exitUsage {
		t.Fatalf("bad --retain: exit %d, stderr %q", r.code, r.stderr)
	}
}
