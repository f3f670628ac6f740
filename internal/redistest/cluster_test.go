package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node cluster and fails one over; skipped with -short")
	}
	t.Parallel()
	ctx := context.Background()

	start := time.Now()
	cl := StartCluster(t, ClusterOptions{})
	t.Logf("cluster of %d nodes ready in %v", len(cl.Nodes()), time.Since(start))
	if got := len(cl.Nodes()); got != 6 {
		t.Fatalf("%d nodes, want 3 masters + 3 replicas", got)
	}
	if got := len(cl.Addrs()); got != 6 {
		t.Fatalf("%d addrs, want 6", got)
	}

	cc := cl.Client(t)
	masters := make(map[*Server]bool)
	for i := range 30 {
		key := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		if got, err := cc.Get(ctx, key).Int(); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", key, got, err, i)
		}
		masters[cl.MasterFor(key)] = true
	}
	if len(masters) != 3 {
		t.Errorf("30 keys landed on %d masters, want all 3", len(masters))
	}

	const key = "failover-key"
	old := cl.MasterFor(key)
	replicas := make(map[*Server]bool)
	for _, n := range cl.Nodes() {
		repl, err := replicationInfo(n)
		if err != nil {
			t.Fatal(err)
		}
		if repl["role"] == "slave" && repl["master_port"] == fmt.Sprint(old.Port()) {
			replicas[n] = true
		}
	}
	if len(replicas) != 1 {
		t.Fatalf("master %s has %d replicas, want 1", old.Addr(), len(replicas))
	}
	// WAIT counts replicas that have the writes made on its own
	// connection, so SET and WAIT go over one Conn: once WAIT returns 1 the
	// replica holds the value and the failover cannot lose it.
	conn := old.Client(t).Conn()
	if err := conn.Set(ctx, key, "survives", 0).Err(); err != nil {
		t.Fatalf("SET on master: %v", err)
	}
	if acked, err := conn.Wait(ctx, 1, 5*time.Second).Result(); err != nil || acked != 1 {
		t.Fatalf("WAIT 1 on master: %d replicas acked, %v", acked, err)
	}
	conn.Close()

	killStart := time.Now()
	killed := cl.KillMaster(t, key)
	t.Logf("failover done in %v", time.Since(killStart))
	if killed != old {
		t.Errorf("KillMaster killed %s, want the key's master %s", killed.Addr(), old.Addr())
	}
	if killed.Pid() != 0 {
		t.Errorf("killed master still has pid %d", killed.Pid())
	}
	promoted := cl.MasterFor(key)
	if !replicas[promoted] {
		t.Fatalf("key now served by %s, which was not a replica of the killed master", promoted.Addr())
	}
	if got, err := promoted.Client(t).Get(ctx, key).Result(); err != nil || got != "survives" {
		t.Errorf("GET on promoted replica = %q, %v", got, err)
	}
	// The cluster client would only reload its slot map once it is 10 s
	// old; ReloadState makes it look now (in the background).
	cc.ReloadState(ctx)
	WaitFor(t, 10*time.Second, func() bool {
		got, err := cc.Get(ctx, key).Result()
		return err == nil && got == "survives"
	}, "cluster client to read %q from the promoted replica", key)

	// A restarted master keeps its node id (nodes.conf) and rejoins as a
	// replica of the node that replaced it.
	killed.Restart()
	WaitFor(t, 15*time.Second, func() bool {
		repl, err := replicationInfo(killed)
		return err == nil && repl["role"] == "slave" &&
			repl["master_port"] == fmt.Sprint(promoted.Port()) && repl["master_link_status"] == "up"
	}, "restarted master %s to rejoin as a replica of %s", killed.Addr(), promoted.Addr())
	t.Logf("whole test took %v", time.Since(start))
}
