package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// clusterSlots is the number of hash slots in every Redis Cluster.
	clusterSlots = 16384
	// createTimeout bounds redis-cli --cluster create, which itself waits
	// for the nodes to agree on the configuration.
	createTimeout = 60 * time.Second
	// clusterReadyTimeout bounds the wait for a new cluster to be usable;
	// six nodes normally get there in about 2 s.
	clusterReadyTimeout = 30 * time.Second
	// failoverTimeout bounds the wait for a replica to take over from a
	// killed master: node timeout plus election, normally a few seconds.
	failoverTimeout = 30 * time.Second
)

// ClusterOptions configures StartCluster. Zero values mean the defaults.
type ClusterOptions struct {
	// Masters is the number of masters; 0 means 3, the least redis-cli
	// accepts.
	Masters int
	// ReplicasPerMaster is the number of replicas of each master; 0 means 1
	// and a negative number means none (then KillMaster cannot recover).
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout, after which an unreachable master
	// is failed over; 0 means 2 s (Redis's own default of 15 s would make
	// failover tests slow).
	NodeTimeout time.Duration
}

// withDefaults fills in the documented defaults.
func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.Masters == 0 {
		o.Masters = 3
	}
	switch {
	case o.ReplicasPerMaster == 0:
		o.ReplicasPerMaster = 1
	case o.ReplicasPerMaster < 0:
		o.ReplicasPerMaster = 0
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	return o
}

// Cluster is a Redis Cluster of Servers owned by one test, each node with
// its own port and directory. Nodes are killed in the test's Cleanup.
type Cluster struct {
	tb    testing.TB
	opts  ClusterOptions
	nodes []*Server
}

// StartCluster starts Masters*(1+ReplicasPerMaster) cluster-enabled
// servers, joins them with redis-cli --cluster create, and returns once
// every node reports cluster_state:ok with all 16384 slots served, knows
// every other node, and every replica is in sync with its master.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	opts = opts.withDefaults()
	if opts.Masters < 3 {
		tb.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", opts.Masters)
	}
	if opts.NodeTimeout < time.Millisecond {
		tb.Fatalf("redistest: cluster node timeout %v is under 1 ms", opts.NodeTimeout)
	}
	c := &Cluster{tb: tb, opts: opts}
	nodeArgs := []string{
		// The config path is relative to --dir, and each node has its own.
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
		// Let a replica take over however long it was cut off from its
		// master, so fault tests never meet a cluster that stays down
		// because its replicas' data is judged too old.
		"--cluster-replica-validity-factor", "0",
		// Redis 7.0 delays a diskless full sync by 5 s in case more
		// replicas ask; no more will, and every replica's first sync (and
		// a restarted node's resync) would wait that long.
		"--repl-diskless-sync-delay", "0",
	}
	for range opts.Masters * (1 + opts.ReplicasPerMaster) {
		c.nodes = append(c.nodes, StartServer(tb, ServerOptions{ExtraArgs: nodeArgs}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.ReplicasPerMaster), "--cluster-yes")
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	if err := pollErr(clusterReadyTimeout, c.ready); err != nil {
		tb.Fatalf("redistest: cluster not ready within %v: %v\nredis-cli output:\n%s", clusterReadyTimeout, err, out)
	}
	return c
}

// Addrs returns the addresses of all nodes, masters and replicas, in the
// order they were started.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns all nodes in the order they were started. Which of them are
// masters is decided by redis-cli and changes on failover; use MasterFor.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// Client returns a go-redis cluster client with default options, seeded
// with every node's address and closed in tb.Cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterFor returns the node that currently serves key's slot, as the first
// running node answering CLUSTER KEYSLOT and CLUSTER SLOTS sees it. Right
// after a master dies that may still be the dead master, until the cluster
// fails it over. It fails the test if no running node can tell.
func (c *Cluster) MasterFor(key string) *Server {
	c.tb.Helper()
	m, err := c.masterFor(key)
	if err != nil {
		c.tb.Fatalf("redistest: find the master for key %q: %v", key, err)
	}
	return m
}

// KillMaster SIGKILLs the master that serves key and waits (up to 30 s) until
// every remaining node reports cluster_state:ok and routes key's slot to a
// running node that has been promoted to master. It returns the killed
// server, which the test may Restart to have it rejoin as a replica.
//
// Clients are not told: a go-redis ClusterClient keeps routing the slot to
// the dead master until a MOVED reply or until its slot map is 10 s old, so
// a test that wants it to move on at once calls its ReloadState.
func (c *Cluster) KillMaster(tb testing.TB, key string) *Server {
	tb.Helper()
	old, err := c.masterFor(key)
	if err != nil {
		tb.Fatalf("redistest: find the master for key %q: %v", key, err)
	}
	old.Kill()
	err = pollErr(failoverTimeout, func() error { return c.failedOver(key, old) })
	if err != nil {
		tb.Fatalf("redistest: no replica took over key %q from killed master %s within %v: %v",
			key, old.Addr(), failoverTimeout, err)
	}
	return old
}

// masterFor asks the running nodes in turn which node serves key.
func (c *Cluster) masterFor(key string) (*Server, error) {
	var errs []error
	for _, n := range c.nodes {
		if n.Pid() == 0 {
			continue
		}
		m, err := c.masterSeenBy(n, key)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("no node is running")
	}
	return nil, errors.Join(errs...)
}

// masterSeenBy returns the node that n's CLUSTER SLOTS names as the master
// of key's slot.
func (c *Cluster) masterSeenBy(n *Server, key string) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	slot, err := n.admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: CLUSTER KEYSLOT: %w", n.Addr(), err)
	}
	ranges, err := n.admin.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: CLUSTER SLOTS: %w", n.Addr(), err)
	}
	for _, r := range ranges {
		if int64(r.Start) > slot || slot > int64(r.End) || len(r.Nodes) == 0 {
			continue
		}
		// The first node of a range is its master. Match on the port only:
		// every node is on 127.0.0.1, but how a node spells its own host
		// is up to Redis.
		_, port, err := net.SplitHostPort(r.Nodes[0].Addr)
		if err != nil {
			return nil, fmt.Errorf("node %s: CLUSTER SLOTS address %q: %w", n.Addr(), r.Nodes[0].Addr, err)
		}
		for _, m := range c.nodes {
			if strconv.Itoa(m.Port()) == port {
				return m, nil
			}
		}
		return nil, fmt.Errorf("node %s: slot %d served by %s, which is not in this cluster", n.Addr(), slot, r.Nodes[0].Addr)
	}
	return nil, fmt.Errorf("node %s: slot %d is not served", n.Addr(), slot)
}

// ready reports why the new cluster is not yet fully usable, or nil.
func (c *Cluster) ready() error {
	masters := 0
	for _, n := range c.nodes {
		info, err := clusterInfo(n)
		if err != nil {
			return err
		}
		if err := clusterOK(n, info); err != nil {
			return err
		}
		if got, want := info["cluster_known_nodes"], strconv.Itoa(len(c.nodes)); got != want {
			return fmt.Errorf("node %s knows %s nodes, want %s", n.Addr(), got, want)
		}
		repl, err := replicationInfo(n)
		if err != nil {
			return err
		}
		switch repl["role"] {
		case "master":
			masters++
			if got, want := repl["connected_slaves"], strconv.Itoa(c.opts.ReplicasPerMaster); got != want {
				return fmt.Errorf("master %s has %s replicas connected, want %s", n.Addr(), got, want)
			}
		case "slave":
			// A replica still loading its first sync could not take over
			// in a failover test.
			if repl["master_link_status"] != "up" || repl["master_sync_in_progress"] != "0" {
				return fmt.Errorf("replica %s: link to master %s, sync in progress %s",
					n.Addr(), repl["master_link_status"], repl["master_sync_in_progress"])
			}
		default:
			return fmt.Errorf("node %s has role %q", n.Addr(), repl["role"])
		}
	}
	if masters != c.opts.Masters {
		return fmt.Errorf("%d masters, want %d", masters, c.opts.Masters)
	}
	return nil
}

// failedOver reports why key's slot has not yet moved from the killed master
// old to a promoted replica in the view of every running node, or nil.
func (c *Cluster) failedOver(key string, old *Server) error {
	for _, n := range c.nodes {
		if n.Pid() == 0 {
			continue
		}
		info, err := clusterInfo(n)
		if err != nil {
			return err
		}
		// A cluster whose master just died still reports ok until the
		// node timeout passes, so the slot owner below is the real test.
		if err := clusterOK(n, info); err != nil {
			return err
		}
		m, err := c.masterSeenBy(n, key)
		if err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("node %s still routes %q to the killed master %s", n.Addr(), key, old.Addr())
		}
		if m.Pid() == 0 {
			return fmt.Errorf("node %s routes %q to %s, which is not running", n.Addr(), key, m.Addr())
		}
		repl, err := replicationInfo(m)
		if err != nil {
			return err
		}
		if repl["role"] != "master" {
			return fmt.Errorf("node %s routes %q to %s, whose role is still %q", n.Addr(), key, m.Addr(), repl["role"])
		}
	}
	return nil
}

// clusterOK reports why n's CLUSTER INFO does not show a healthy cluster.
func clusterOK(n *Server, info map[string]string) error {
	if info["cluster_state"] != "ok" {
		return fmt.Errorf("node %s: cluster_state:%s", n.Addr(), info["cluster_state"])
	}
	if got, want := info["cluster_slots_ok"], strconv.Itoa(clusterSlots); got != want {
		return fmt.Errorf("node %s: cluster_slots_ok:%s, want %s", n.Addr(), got, want)
	}
	return nil
}

// clusterInfo returns n's CLUSTER INFO as a map.
func clusterInfo(n *Server) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	s, err := n.admin.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: CLUSTER INFO: %w", n.Addr(), err)
	}
	return parseInfo(s), nil
}

// replicationInfo returns n's INFO replication as a map.
func replicationInfo(n *Server) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	s, err := n.admin.Info(ctx, "replication").Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: INFO replication: %w", n.Addr(), err)
	}
	return parseInfo(s), nil
}

// parseInfo parses the "field:value" lines of INFO and CLUSTER INFO replies,
// skipping "# Section" headers and blank lines.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}
