package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/internal/redistest"
)

func seedConsole(t *testing.T) consoleseed.Seeded {
	t.Helper()
	client := redistest.NewClient(t)
	s, err := consoleseed.Seed(context.Background(), client, redistest.RandomTopic("cli-list-")+".")
	t.Cleanup(func() { consoleseed.Cleanup(context.Background(), client, s) })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTopicList(t *testing.T) {
	t.Parallel()
	s := seedConsole(t)
	var topics []admin.TopicSummary
	okJSON(t, &topics, "topic", "list", "--match", s.Prefix+"*")
	if len(topics) != 5 || topics[0].Topic != s.DeadLetters || topics[2].Topic != s.Orders {
		t.Fatalf("topic list --json = %+v", topics)
	}
	if o := topics[2]; o.Groups != 2 || o.Poisoned != 6 || o.Delayed != 3 || o.RetriesWaiting != 4 {
		t.Errorf("orders = %+v", o)
	}
	out := ok(t, "topic", "list", "--match", s.Prefix+"*")
	contains(t, "topic list", out, "TOPIC", s.Orders, "poisoned messages", "not reading: shipping", "poison topic")
	if out := ok(t, "topic", "list", "--match", s.Prefix+"none*"); !strings.Contains(out, "No topics.") {
		t.Errorf("empty list = %q", out)
	}
	if r := run(t, nil, "topic", "list", "extra"); r.code != exitUsage {
		t.Errorf("topic list extra: exit %d", r.code)
	}
}

// startWeb runs "redrive web" and returns the console's URL once it serves.
func startWeb(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"web", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=redis://" + redistest.Addr()}, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case line := <-lines:
		i := strings.Index(line, "http://")
		if i < 0 {
			t.Fatalf("redrive web printed %q", line)
		}
		return strings.TrimSpace(line[i:])
	case <-time.After(30 * time.Second):
		t.Fatal("redrive web did not start within 30s")
		return ""
	}
}

func TestWebCommand(t *testing.T) {
	t.Parallel()
	s := seedConsole(t)
	base := startWeb(t, []string{basicAuthEnv + "=ops:s3cret"}, "--basic-auth", "--read-only", "--prefix", "/redrive", "--match", s.Prefix+"*")
	if !strings.HasSuffix(base, "/redrive/") {
		t.Fatalf("console URL %q lacks the prefix", base)
	}
	get := func(user, password, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := get("", "", ""); status != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", status)
	}
	if status, _ := get("ops", "wrong", ""); status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", status)
	}
	status, body := get("ops", "s3cret", "")
	if status != http.StatusOK || !strings.Contains(body, s.Orders) || !strings.Contains(body, "read-only") {
		t.Fatalf("overview: %d\n%s", status, body)
	}
	if status, _ := get("ops", "s3cret", "topic?name="+url.QueryEscape(s.Orders)); status != http.StatusOK {
		t.Errorf("topic page: %d", status)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"poison/run", strings.NewReader("stream="+url.QueryEscape(s.OrdersPoison)+"&op=purge&scope=filter"))
	req.SetBasicAuth("ops", "s3cret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST to a read-only console: %d, want 403", resp.StatusCode)
	}
}

func TestWebCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"web", "--basic-auth"}, "REDRIVE_WEB_BASIC_AUTH"},
		{[]string{basicAuthEnv + "=nocolon"}, []string{"web", "--basic-auth"}, "user:password"},
		// A password given as a flag value is refused, never used.
		{nil, []string{"web", "--basic-auth=ops:secret"}, "invalid boolean"},
		{nil, []string{"web", "--prefix", "redrive"}, "must start with /"},
		{nil, []string{"web", "extra"}, "unexpected argument"},
	} {
		r := run(t, tc.env, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("redrive %v: exit %d, stderr %q; want %d with %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
	for _, args := range [][]string{{"web", "--help"}, {"help", "web"}} {
		if out := ok(t, args...); !strings.Contains(out, "--read-only") || !strings.Contains(out, basicAuthEnv) {
			t.Errorf("redrive %v:\n%s", args, out)
		}
	}
	if out := ok(t, "--help"); !strings.Contains(out, "topic list") || !strings.Contains(out, "web [--listen ADDR]") {
		t.Errorf("redrive --help does not list topic list and web:\n%s", out)
	}
}
