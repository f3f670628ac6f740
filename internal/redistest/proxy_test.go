package redistest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// rawPing sends PING on conn and returns the first reply line.
func rawPing(conn net.Conn) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestProxyForwardsAndCutAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartServer(t, ServerOptions{})
	p := StartProxy(t, s.Addr())
	direct := s.Client(t)

	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	t.Cleanup(func() { c.Close() })
	if err := c.Set(ctx, "k", "through the proxy", 0).Err(); err != nil {
		t.Fatalf("SET through proxy: %v", err)
	}
	if got, err := direct.Get(ctx, "k").Result(); err != nil || got != "through the proxy" {
		t.Fatalf("GET directly = %q, %v; the proxy did not forward", got, err)
	}

	raw, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer raw.Close()
	if reply, err := rawPing(raw); err != nil || reply != "+PONG" {
		t.Fatalf("raw PING through proxy = %q, %v", reply, err)
	}

	// A blocked command on a client that does not retry shows the cut as a
	// client would see it mid-request.
	blocking := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	t.Cleanup(func() { blocking.Close() })
	if err := blocking.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	blpop := make(chan error, 1)
	go func() { blpop <- blocking.BLPop(ctx, 30*time.Second, "never-pushed").Err() }()
	WaitFor(t, 5*time.Second, func() bool {
		n, _ := direct.Info(ctx, "clients").Result()
		return parseInfo(n)["blocked_clients"] == "1"
	}, "BLPOP to block on the server")

	p.CutAll()

	if reply, err := rawPing(raw); err == nil {
		t.Errorf("raw connection still works after CutAll: %q", reply)
	}
	select {
	case err := <-blpop:
		if err == nil || errors.Is(err, redis.Nil) {
			t.Errorf("BLPOP after CutAll: err = %v, want a connection error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP still blocked 5 s after CutAll")
	}

	// New connections go through again.
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "through the proxy" {
		t.Errorf("GET through proxy after CutAll = %q, %v", got, err)
	}
	if err := blocking.Ping(ctx).Err(); err != nil {
		t.Errorf("PING on a fresh connection after CutAll: %v", err)
	}
}

func TestProxyPaused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartServer(t, ServerOptions{})
	p := StartProxy(t, s.Addr())

	before, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer before.Close()
	if reply, err := rawPing(before); err != nil || reply != "+PONG" {
		t.Fatalf("PING through proxy = %q, %v", reply, err)
	}

	p.SetPaused(true)
	during, err := net.Dial("tcp", p.Addr())
	if err == nil {
		reply, err := rawPing(during)
		during.Close()
		if err == nil {
			t.Errorf("new connection while paused answered %q", reply)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("go-redis PING through a paused proxy succeeded")
	}
	// Pausing leaves existing connections alone.
	if reply, err := rawPing(before); err != nil || reply != "+PONG" {
		t.Errorf("PING on a connection made before the pause = %q, %v", reply, err)
	}

	p.SetPaused(false)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("PING after unpausing: %v", err)
	}
}

func TestProxyClose(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerOptions{})
	p := StartProxy(t, s.Addr())
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer conn.Close()
	if reply, err := rawPing(conn); err != nil || reply != "+PONG" {
		t.Fatalf("PING through proxy = %q, %v", reply, err)
	}

	// Close waits for every goroutine, so its return proves none is left.
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5 s with a connection open")
	}
	p.Close() // idempotent

	if reply, err := rawPing(conn); err == nil {
		t.Errorf("connection still works after Close: %q", reply)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("closed proxy still accepts connections")
	}
}
