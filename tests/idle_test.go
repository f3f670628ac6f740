package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// idleLongBlock is a BlockTime no test could wait out: whatever ends a read
// before it did so on purpose.
const idleLongBlock = time.Hour

// blockedReads counts the clients of srv blocked in a stream read.
func blockedReads(t *testing.T, admin *redis.Client) int {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if (strings.Contains(line, " cmd=xreadgroup") || strings.Contains(line, " cmd=xread ")) && strings.Contains(line, " flags=b") {
			n++
		}
	}
	return n
}

// closeWithinWait closes sub and fails the test unless Close returns within
// waitTimeout, far less than the read it cuts would block.
func closeWithinWait(t *testing.T, sub *redrive.Subscriber) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		_ = sub.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatalf("Close did not return within %s of a read blocked for %s", waitTimeout, idleLongBlock)
	}
}

// Close ends a subscription whose reader is blocked in a read of an hour:
// the read runs on the subscription's own connection, which Close closes.
// The caller's client is not closed, and none of its pool's connections
// was taken by the blocking read.
func TestCloseEndsALongBlockingRead(t *testing.T) {
	for name, group := range map[string]string{"group": "idle", "fan-out": ""} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.StartServer(t, redistest.ServerOptions{})
			admin := srv.Client(t)
			client := srv.Client(t)
			sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: group, BlockTime: idleLongBlock}, nil)
			msgs := subscribe(t, sub, redistest.RandomTopic("idle-close"))
			redistest.WaitFor(t, waitTimeout, func() bool { return blockedReads(t, admin) == 1 },
				"the reader blocked in its read")
			// A read blocking on the caller's pool would hold a connection
			// for the whole hour.
			redistest.WaitFor(t, waitTimeout, func() bool {
				stats := client.PoolStats()
				return stats.TotalConns == stats.IdleConns
			}, "no connection of the caller's pool in use while the reader blocks")

			closeWithinWait(t, sub)
			select {
			case _, open := <-msgs:
				if open {
					t.Fatal("a message arrived, want the channel closed")
				}
			case <-time.After(waitTimeout):
				t.Fatal("the channel did not close")
			}
			redistest.WaitFor(t, waitTimeout, func() bool { return blockedReads(t, admin) == 0 },
				"the blocked read gone from the server")
			if err := client.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("the caller's client after Close: %v", err)
			}
		})
	}
}

// With MaxInFlight 1 the reader's blocking read holds the only in-flight
// slot; the claimer, which needs a slot for what it claims, cuts the read
// short instead of waiting for an hour, and the entry a dead consumer left
// behind is delivered.
func TestClaimerCutsALongBlockingRead(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	admin := srv.Client(t)
	client := srv.Client(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("idle-claim")
	const group = "g"
	if err := admin.XGroupCreateMkStream(ctx, topic, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, client)
	left := message.NewMessage(watermill.NewUUID(), []byte("left by a dead consumer"))
	publish(t, pub, topic, left)
	if err := admin.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "dead", Streams: []string{topic, ">"}, Count: 1}).Err(); err != nil {
		t.Fatal(err)
	}

	const maxIdle = 500 * time.Millisecond
	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: group, MaxInFlight: 1, BlockTime: idleLongBlock,
		MaxIdleTime: maxIdle, ClaimInterval: maxIdle / 5,
	}, nil)
	msgs := subscribe(t, sub, topic)
	select {
	case msg := <-msgs:
		if msg.UUID != left.UUID {
			t.Fatalf("got %s, want the claimed %s", msg.UUID, left.UUID)
		}
		msg.Ack()
	case <-time.After(waitTimeout):
		t.Fatalf("the dead consumer's entry was not claimed while the reader blocked (BlockTime %s)", idleLongBlock)
	}
	// The reader reads again after the claim.
	redistest.WaitFor(t, waitTimeout, func() bool { return blockedReads(t, admin) == 1 }, "the reader blocked again")
	next := message.NewMessage(watermill.NewUUID(), []byte("next"))
	publish(t, pub, topic, next)
	select {
	case msg := <-msgs:
		if msg.UUID != next.UUID {
			t.Fatalf("got %s, want %s", msg.UUID, next.UUID)
		}
		msg.Ack()
	case <-time.After(waitTimeout):
		t.Fatal("a message published after the claim did not arrive")
	}
}

// startSentinel runs a Sentinel watching srv as master "m" and returns its
// address.
func startSentinel(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	dir := t.TempDir()
	port := redistest.FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor m 127.0.0.1 %d 1\n", port, dir, srv.Port())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-sentinel: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// A Sentinel failover client is a *redis.Client whose dialer asks Sentinel
// for the master: the subscription's own read connection, built from its
// options, reaches the master the same way, blocks there, and Close ends
// the read.
func TestSentinelClientReadsOnItsOwnConnection(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	admin := srv.Client(t)
	sentinel := startSentinel(t, srv)
	client := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{sentinel}})
	t.Cleanup(func() { _ = client.Close() })
	redistest.WaitFor(t, waitTimeout, func() bool { return client.Ping(context.Background()).Err() == nil },
		"the failover client reaches the master through Sentinel")

	topic := redistest.RandomTopic("idle-sentinel")
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "g", BlockTime: idleLongBlock}, nil)
	msgs := subscribe(t, sub, topic)
	redistest.WaitFor(t, waitTimeout, func() bool { return blockedReads(t, admin) == 1 },
		"the reader blocked on the master")
	msg := message.NewMessage(watermill.NewUUID(), []byte("through sentinel"))
	publish(t, newPublisher(t, client), topic, msg)
	select {
	case got := <-msgs:
		if got.UUID != msg.UUID {
			t.Fatalf("got %s, want %s", got.UUID, msg.UUID)
		}
		got.Ack()
	case <-time.After(waitTimeout):
		t.Fatal("the message did not arrive")
	}
	closeWithinWait(t, sub)
}
