package redistest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestServerKillStopRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartServer(t, ServerOptions{})
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	pid, port := s.Pid(), s.Port()
	if pid == 0 {
		t.Fatal("Pid() = 0 for a running server")
	}

	s.Kill()
	if got := s.Pid(); got != 0 {
		t.Errorf("Pid() after Kill = %d, want 0", got)
	}
	if err := probe(s.Addr(), 0); err == nil {
		t.Fatal("killed server still answers PING")
	}
	s.Kill() // killing a dead server does nothing

	s.Restart()
	if s.Port() != port {
		t.Errorf("Port() after Restart = %d, want %d", s.Port(), port)
	}
	if got := s.Pid(); got == 0 || got == pid {
		t.Errorf("Pid() after Restart = %d, want a new non-zero pid (was %d)", got, pid)
	}
	// Without AppendOnly nothing is kept on disk.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET after Kill and Restart without AOF: err = %v, want redis.Nil", err)
	}

	// Restart of a running server stops it first.
	pid = s.Pid()
	s.Restart()
	if got := s.Pid(); got == 0 || got == pid {
		t.Errorf("Pid() after Restart of a running server = %d, want new (was %d)", got, pid)
	}

	s.Stop()
	s.Stop() // idempotent
	if got := s.Pid(); got != 0 {
		t.Errorf("Pid() after Stop = %d, want 0", got)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "redis-server.log")); err != nil {
		t.Errorf("server log: %v", err)
	}
}

func TestServerAppendOnlySurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartServer(t, ServerOptions{AppendOnly: true})
	c := s.Client(t)
	if err := c.Set(ctx, "crash", "kept", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	// appendfsync always: an acknowledged write survives even SIGKILL.
	s.Kill()
	s.Restart()
	if got, err := c.Get(ctx, "crash").Result(); err != nil || got != "kept" {
		t.Fatalf("GET after Kill and Restart with AOF = %q, %v; want kept", got, err)
	}

	if err := c.Set(ctx, "clean", "kept too", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Stop()
	s.Restart()
	for key, want := range map[string]string{"crash": "kept", "clean": "kept too"} {
		if got, err := c.Get(ctx, key).Result(); err != nil || got != want {
			t.Errorf("GET %s after Stop and Restart with AOF = %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestServerOptions(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	s := StartServer(t, ServerOptions{Port: port, ExtraArgs: []string{"--maxmemory", "10mb"}})
	if s.Port() != port {
		t.Errorf("Port() = %d, want the requested %d", s.Port(), port)
	}
	cfg, err := s.Client(t).ConfigGet(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("CONFIG GET: %v", err)
	}
	for key, want := range map[string]string{
		"maxmemory":  "10485760",
		"appendonly": "no",
		"save":       "",
		"bind":       "127.0.0.1",
		"dir":        s.Dir(),
		"daemonize":  "no",
	} {
		if got := cfg[key]; got != want {
			t.Errorf("CONFIG GET %s = %q, want %q", key, got, want)
		}
	}
}

func TestServerRefusesTakenPort(t *testing.T) {
	t.Parallel()
	other := StartServer(t, ServerOptions{})

	// Another redis-server on the port answers PING too; StartServer must
	// notice it is not its own process rather than hand back the wrong one.
	rec := &fatalRecorder{TB: t, goexit: true}
	done := make(chan *Server)
	go func() {
		defer close(done)
		done <- StartServer(rec, ServerOptions{Port: other.Port()})
	}()
	if s, ok := <-done; ok {
		t.Fatalf("StartServer on a taken port returned a server with pid %d", s.Pid())
	}
	if !strings.Contains(rec.msg, "port already in use") {
		t.Errorf("StartServer on a taken port failed with %q, want it to say the port is in use", rec.msg)
	}
}
