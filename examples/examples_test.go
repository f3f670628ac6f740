// Package examples_test runs every example program to completion, so CI
// (go test ./...) keeps them working: once against the real Redis, and once
// on the embedded in-memory Redis they fall back to when none answers.
package examples_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redrive-go/redrive/internal/redistest"
)

// runTimeout bounds one example; each finishes in a few seconds.
const runTimeout = 60 * time.Second

// examples lists each example with lines (regular expressions) its output
// must contain, in this order.
var examples = map[string][]string{
	"other-brokers": {
		`publishing order-7`,
		`send-email: retry 1 of order-7 held in Redis \(redrive:durable-retries:\{\S+\}\), due in 200ms`,
		`send-email: order-7 handled \(after 1 failure\)`,
		`reserve-stock retried in process; send-email retried durably in Redis\.`,
		`Done: each handler retried order-7 on its own; router closed\.`,
	},
	"quickstart": {
		`send-invoice: attempt 1 for order-1001 failed: invoice service unavailable`,
		`retry 1 of order-1001 scheduled in Redis, due in 200ms`,
		`send-invoice: attempt 2 for order-1001 failed`,
		`retry 2 of order-1001 scheduled in Redis, due in 400ms`,
		`send-invoice: attempt 3 for order-1001 succeeded \(its metadata records 2 failures\)`,
		`Done: order-1001 handled after 2 retries; router closed\.`,
	},
	"two-groups": {
		`Shipping handled order-2 1 time\(s\); billing handled it 2 times\.`,
		`Consumer group billing: 0 pending`,
		`Consumer group shipping: 0 pending`,
		`Done: each group acked every order on its own; only billing saw the retry\.`,
	},
	"delayed": {
		`Waiting in the delayed set \S+:delayed: 3 messages`,
		`received  now `,
		`received  in-0\.5s `,
		`received  in-1s `,
		`received  in-1\.5s `,
		`Done: each message arrived when due, in due order\.`,
	},
	"migrate-from-redisstream": {
		`old service: handled order-1`,
		`old service: handled order-2`,
		`new service: handled order-3`,
		`new service: order-4 failed \(inventory service unavailable\); retry 1 scheduled in 200ms`,
		`new service: handled order-4`,
		`new service: handled order-5`,
		`read: order-1, order-2, order-3, order-4, order-5`,
		`Done: `,
	},
	"poison-and-redrive": {
		`retry 2 of payment-42 scheduled in 200ms`,
		`payment-42 poisoned after 3 attempts: max retries exceeded \(2\): card processor rejects currency "XTS"`,
		`TopicInfo: stream length 1, poisoned 1`,
		`ListPoisoned: payment-42  handler charge-card  attempts 3  reason "max retries exceeded \(2\): card processor rejects currency \\"XTS\\""`,
		`RequeuePoisoned, dry run: payment-42 would-requeue, to group charge-card`,
		`RequeuePoisoned: payment-42 requeued to \S+:retry:charge-card`,
		`charge-card: payment-42 charged \(retry count 0 after the requeue; its history keeps the 3 earlier failures; requeued 1 time\)`,
		`Done: the poison stream holds 0 messages\.`,
	},
	"web": {
		`Console: http://127\.0\.0\.1:\d+/redrive/`,
		`Poisoned so far: 2 orders`,
		`Console overview: HTTP 200, shows orders: true, shows reminders: true`,
		`Done: the console is mounted beside the application's pages\.`,
	},
}

// exampleArgs are the arguments an example needs to end by itself.
var exampleArgs = map[string][]string{"web": {"-once"}}

// goRedisLog matches what go-redis logs about its connection pool, such as
// watermill-redisstream closing its client while a read is in flight (in
// migrate-from-redisstream): harmless, and not the example's to hide.
var goRedisLog = regexp.MustCompile(`(?m)^redis: .* pool\.go:\d+: .*$`)

func TestExamples(t *testing.T) {
	dirs, err := filepath.Glob("*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(examples) {
		t.Errorf("found %d examples (%v), the test knows %d: add the new one to examples", len(dirs), dirs, len(examples))
	}

	bin := t.TempDir()
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin+string(os.PathSeparator), "./...")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./... in examples: %v\n%s", err, out)
	}
	// A port nothing listens on: the examples fall back to the embedded Redis.
	closedAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	redistest.NewClient(t) // fails at once when the real Redis is missing

	for name, want := range examples {
		for _, target := range []struct {
			label, addr, firstLine string
		}{
			{"redis", redistest.Addr(), "Redis: " + redistest.Addr()},
			{"embedded", closedAddr, "Redis: none answered at " + closedAddr + ", so using an embedded in-memory Redis (miniredis)"},
		} {
			t.Run(name+"/"+target.label, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, filepath.Join(bin, name), exampleArgs[name]...)
				cmd.Env = append(os.Environ(), "REDIS_ADDR="+target.addr)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, stderr.String())
				}
				if unexpected := goRedisLog.ReplaceAllString(stderr.String(), ""); strings.TrimSpace(unexpected) != "" {
					t.Errorf("%s wrote to stderr:\n%s", name, stderr.String())
				}
				lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
				if lines[0] != target.firstLine {
					t.Errorf("first line = %q, want %q", lines[0], target.firstLine)
				}
				rest := string(out)
				for _, w := range want {
					loc := regexp.MustCompile(w).FindStringIndex(rest)
					if loc == nil {
						t.Fatalf("output lacks %q (after the lines matched before it):\n%s", w, out)
					}
					rest = rest[loc[1]:]
				}
			})
		}
	}
}
