package tests

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/hashslot"
	"github.com/redrive-go/redrive/internal/redistest"
)

// TestCluster runs redrive against a real Redis Cluster of 3 masters and 3
// replicas, started once for all its subtests (a cluster takes a few
// seconds to form): Watermill's universal suite, retries and poison, delayed
// messages, the key layout, awkward topic names and the replica-wait
// option, in parallel; then, alone and last, a failover under load.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; skipped with -short")
	}
	start := time.Now()
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	t.Logf("cluster of %d nodes ready in %v", len(cl.Nodes()), time.Since(start).Round(time.Millisecond))

	t.Run("Shared", func(t *testing.T) {
		t.Run("UniversalSuite", func(t *testing.T) {
			t.Parallel()
			clusterUniversalSuite(t, cl)
		})
		t.Run("RetryAndPoison", func(t *testing.T) {
			t.Parallel()
			clusterRetryAndPoison(t, cl.Client(t))
		})
		t.Run("Delayed", func(t *testing.T) {
			t.Parallel()
			clusterDelayed(t, cl.Client(t))
		})
		t.Run("KeysShareTheTopicSlot", func(t *testing.T) {
			t.Parallel()
			clusterKeysShareTheTopicSlot(t, cl.Client(t))
		})
		t.Run("BadTopicNames", func(t *testing.T) {
			t.Parallel()
			badInputTopicNames(t, cl.Client(t))
		})
		t.Run("WaitReplicas", func(t *testing.T) {
			t.Parallel()
			clusterWaitReplicas(t, cl.Client(t))
		})
		t.Run("LeastPrivilegeACL", func(t *testing.T) {
			t.Parallel()
			clusterACL(t, cl)
		})
	})
	// Kills a master: nothing may run beside it, and nothing after it
	// expects the original topology.
	t.Run("FailoverWithWaitReplicas", func(t *testing.T) {
		clusterFailover(t, cl)
	})
}

// clusterUniversalSuite runs Watermill's universal suite with consumer
// groups, each constructor call with its own ClusterClient (the suite
// multiplies one subscriber into fifty, each holding a blocking read). Its
// TestReconnect is skipped (no RestartServiceCommand): the failover test
// below is the cluster's reconnect test.
func clusterUniversalSuite(t *testing.T, cl *redistest.Cluster) {
	addrs := cl.Addrs()
	pubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, errorsOnlyLogger{})
		if err != nil {
			t.Fatalf("NewPublisher: %v", err)
		}
		sub, err := redrive.NewSubscriber(suiteSubscriberConfig(client, group), errorsOnlyLogger{})
		if err != nil {
			t.Fatalf("NewSubscriber: %v", err)
		}
		t.Cleanup(func() {
			_ = sub.Close()
			_ = pub.Close()
			_ = client.Close()
		})
		return pub, sub
	}
	features := tests.Features{
		ConsumerGroups:                   true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: false,
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) { return pubSub(t, groupPerTest(t)) },
		pubSub,
	)
}

// clusterRetryAndPoison: through a Router with the retry middleware on a
// ClusterClient, a handler failing twice then succeeding is called three
// times, one always failing is poisoned after MaxRetries, one failing
// permanently at once, and every delivery ends acked (the retry stream's
// acks included).
func clusterRetryAndPoison(t *testing.T, client *redis.ClusterClient) {
	topic := redistest.RandomTopic("cluster-retry-")
	app := startFlowApp(t, client, topic, flowOptions{})
	app.runAllPaths([]byte("cluster"))
	app.checkStreamsDecode()
}

// clusterDelayed: delay.For and delay.Until through redrive's publisher on a
// ClusterClient arrive, and not before they are due; the delayed set is
// left empty.
func clusterDelayed(t *testing.T, client *redis.ClusterClient) {
	ctx := context.Background()
	topic := redistest.RandomTopic("cluster-delayed-")
	keys := redrive.KeysFor(topic)
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "delayed", DelayedPollInterval: 50 * time.Millisecond}, nil)
	got := collect(subscribe(t, sub, topic))
	pub := newPublisher(t, client)

	forMsg := message.NewMessage(watermill.NewUUID(), []byte("for"))
	delay.Message(forMsg, delay.For(700*time.Millisecond))
	until := time.Now().Add(1200 * time.Millisecond)
	untilMsg := message.NewMessage(watermill.NewUUID(), []byte("until"))
	delay.Message(untilMsg, delay.Until(until))
	published := time.Now()
	publish(t, pub, topic, forMsg, untilMsg)

	got.waitUnique(t, 2)
	got.mu.Lock()
	forAt, untilAt := got.received[forMsg.UUID], got.received[untilMsg.UUID]
	got.mu.Unlock()
	// Due times are kept in milliseconds: not early means not in an
	// earlier millisecond.
	if forAt.UnixMilli() < published.Add(700*time.Millisecond).UnixMilli() {
		t.Errorf("delay.For(700ms) message arrived %v after publishing, early", forAt.Sub(published))
	}
	// delay.Until stores whole seconds; the message may not come before them.
	untilStamp, err := time.Parse(time.RFC3339, untilMsg.Metadata.Get(delay.DelayedUntilKey))
	if err != nil {
		t.Fatal(err)
	}
	if untilAt.UnixMilli() < untilStamp.UnixMilli() {
		t.Errorf("delay.Until message arrived at %v, before %v", untilAt, untilStamp)
	}
	if n, err := client.ZCard(ctx, keys.Delayed).Result(); err != nil || n != 0 {
		t.Errorf("delayed set holds %d members (%v) after delivery, want 0", n, err)
	}
}

// clusterKeysShareTheTopicSlot asks the cluster itself (CLUSTER KEYSLOT)
// where every key of the layout goes, for awkward topics and groups: all in
// the topic's slot, and hashslot.Of agrees with Redis.
func clusterKeysShareTheTopicSlot(t *testing.T, client *redis.ClusterClient) {
	ctx := context.Background()
	groups := []string{"g", "g{x}", "{}", "a}b{c", "ü n i:c{o}de"}
	for _, topic := range append(badInputTopicList(), "orders", "{orders}.events", "a{b}c{d}", "{}", "}{", "{{}}", "x{", "}") {
		keys := redrive.KeysFor(topic)
		want, err := client.ClusterKeySlot(ctx, topic).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %.60q: %v", topic, err)
		}
		if int64(hashslot.Of(topic)) != want {
			t.Errorf("hashslot.Of(%.60q) = %d, CLUSTER KEYSLOT says %d", topic, hashslot.Of(topic), want)
		}
		all := []string{keys.Stream, keys.Delayed, keys.Poison}
		for _, g := range groups {
			all = append(all, keys.GroupRetry(g), keys.GroupRetryDelayed(g))
		}
		for _, key := range all {
			got, err := client.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT %.60q: %v", key, err)
			}
			if got != want {
				t.Errorf("topic %.60q: key %.80q in slot %d, the topic in %d", topic, key, got, want)
			}
			if int64(hashslot.Of(key)) != got {
				t.Errorf("hashslot.Of(%.80q) = %d, CLUSTER KEYSLOT says %d", key, hashslot.Of(key), got)
			}
		}
	}
}

// clusterWaitReplicas: with one replica per master, WaitReplicas 1 publishes
// (plain and delayed) and WaitReplicas 2 fails with ErrNotReplicated after
// storing the message on the master.
func clusterWaitReplicas(t *testing.T, client *redis.ClusterClient) {
	ctx := context.Background()
	topics := []string{redistest.RandomTopic("cluster-wait-a-"), redistest.RandomTopic("cluster-wait-b-"), redistest.RandomTopic("cluster-wait-c-")}

	one, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client, WaitReplicas: 1}, errorsOnlyLogger{})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer one.Close()
	// Concurrent calls to topics on different masters share pipelines, one
	// per master, each with its own WAIT.
	var wg sync.WaitGroup
	errs := make(chan error, len(topics)*20)
	for _, topic := range topics {
		for range 10 {
			wg.Go(func() {
				errs <- one.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x")))
				m := message.NewMessage(watermill.NewUUID(), []byte("later"))
				delay.Message(m, delay.For(time.Hour))
				errs <- one.Publish(topic, m)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Publish with WaitReplicas 1: %v", err)
		}
	}
	for _, topic := range topics {
		if n, _ := client.XLen(ctx, topic).Result(); n != 10 {
			t.Errorf("%s holds %d entries, want 10", topic, n)
		}
		if n, _ := client.ZCard(ctx, redrive.KeysFor(topic).Delayed).Result(); n != 10 {
			t.Errorf("delayed set of %s holds %d members, want 10", topic, n)
		}
		_ = client.Del(ctx, redrive.KeysFor(topic).Delayed).Err()
	}

	two, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client, WaitReplicas: 2, WaitTimeout: 50 * time.Millisecond}, errorsOnlyLogger{})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer two.Close()
	err = two.Publish(topics[0], message.NewMessage(watermill.NewUUID(), []byte("x")))
	if !errors.Is(err, redrive.ErrNotReplicated) {
		t.Fatalf("Publish with WaitReplicas 2 and 1 replica: %v, want ErrNotReplicated", err)
	}
	t.Logf("WaitReplicas 2 with one replica: %v", err)
	if n, _ := client.XLen(ctx, topics[0]).Result(); n != 11 {
		t.Errorf("%s holds %d entries, want 11 (the unconfirmed message is on the master)", topics[0], n)
	}
}

// clusterFailover kills the master that owns a topic's slot while a
// publisher with WaitReplicas 1 publishes (plain and delayed messages) and a
// subscriber consumes, and checks that nothing acknowledged is lost: the
// replica takes over, the subscriber and the delayed-message mover carry on
// by themselves. The killed master is restarted once the failover is done,
// so that it rejoins as the new master's replica and WAIT can succeed again.
func clusterFailover(t *testing.T, cl *redistest.Cluster) {
	ctx := context.Background()
	client := cl.Client(t)
	topic := redistest.RandomTopic("cluster-failover-")
	keys := redrive.KeysFor(topic)

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{
		Client: client, WaitReplicas: 1, WaitTimeout: 500 * time.Millisecond,
	}, errorsOnlyLogger{})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer pub.Close()
	sub := newSubscriber(t, redrive.SubscriberConfig{
		Client: client, ConsumerGroup: "failover",
		ClaimInterval: 500 * time.Millisecond, MaxIdleTime: 2 * time.Second,
		DelayedPollInterval: 50 * time.Millisecond,
	}, nil)
	got := collect(subscribe(t, sub, topic))

	// The publisher publishes one message per call and tries again until
	// Publish succeeds; only then does the message count as acknowledged.
	// Every fifth message is delayed by 1.5 s, so some are due while the
	// master is down and are moved by the mover on the promoted replica.
	var (
		mu       sync.Mutex
		acked    []string
		delayed  int // acknowledged delayed messages
		attempts int
		failures = map[string]int{} // distinct publish errors, message IDs taken out
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	publisherDone := make(chan struct{})
	go func() {
		defer close(publisherDone)
		for i := 0; ; i++ {
			msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("m-%d", i)))
			if i%5 == 0 {
				delay.Message(msg, delay.For(1500*time.Millisecond))
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := pub.Publish(topic, msg)
				mu.Lock()
				attempts++
				if err == nil {
					acked = append(acked, msg.UUID)
					if i%5 == 0 {
						delayed++
					}
					mu.Unlock()
					break
				}
				failures[strings.ReplaceAll(err.Error(), msg.UUID, "<uuid>")]++
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-publisherDone
	}()

	redistest.WaitFor(t, waitTimeout, func() bool { return ackedCount() >= 200 }, "200 acknowledged publishes before the kill")
	killedAfter := ackedCount()
	killStart := time.Now()
	killed := cl.KillMaster(t, topic) // while the publisher goes on
	failoverTook := time.Since(killStart)
	client.ReloadState(ctx)
	killed.Restart()
	// WAIT 1 succeeds again once the old master is the new one's replica.
	redistest.WaitFor(t, 60*time.Second, func() bool { return ackedCount() >= killedAfter+200 },
		"200 more acknowledged publishes after the failover (have %d)", ackedCount()-killedAfter)
	close(stop)
	<-publisherDone

	mu.Lock()
	ackedIDs := append([]string(nil), acked...)
	totalAttempts, ackedDelayed := attempts, delayed
	failed := maps.Clone(failures)
	mu.Unlock()
	missing := func() []string {
		var out []string
		for _, id := range ackedIDs {
			if !got.has(id) {
				out = append(out, id)
			}
		}
		return out
	}
	redistest.WaitFor(t, 60*time.Second, func() bool { return len(missing()) == 0 },
		"every acknowledged message received (%d missing)", len(missing()))

	deliveries := len(got.deliveries())
	t.Logf("failover took %v; acknowledged %d (%d delayed; %d before the kill), received %d distinct in %d deliveries (%d duplicates), lost 0; %d publish calls, %d failed",
		failoverTook.Round(time.Millisecond), len(ackedIDs), ackedDelayed, killedAfter, got.unique(), deliveries, deliveries-got.unique(),
		totalAttempts, totalAttempts-len(ackedIDs))
	for f, n := range failed {
		t.Logf("publish error while failing over (%d times): %s", n, f)
	}
	if n, err := client.ZCard(ctx, keys.Delayed).Result(); err != nil || n != 0 {
		t.Errorf("delayed set holds %d members (%v) at the end, want 0", n, err)
	}
}

// TestPublishFailsWhenRedisIsUnreachable: Publish to a server that does not
// answer returns an error, with and without WaitReplicas. (go-redis leaves
// the commands of a pipeline without error when every retry failed to
// connect; redrive once took that for success and lost the messages.)
func TestPublishFailsWhenRedisIsUnreachable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)) // nothing listens there
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer client.Close()
	for _, wait := range []int{0, 1} {
		pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client, WaitReplicas: wait}, errorsOnlyLogger{})
		if err != nil {
			t.Fatal(err)
		}
		later := message.NewMessage(watermill.NewUUID(), []byte("later"))
		delay.Message(later, delay.For(time.Minute))
		for _, m := range []*message.Message{message.NewMessage(watermill.NewUUID(), []byte("now")), later} {
			err := pub.Publish("unreachable", m)
			if err == nil || !strings.Contains(err.Error(), "dial tcp "+addr) {
				t.Errorf("WaitReplicas %d: Publish(%s) to an unreachable server: %v, want a connection error", wait, m.Payload, err)
			}
		}
		_ = pub.Close()
	}
}

// TestWaitReplicasSingleNode: on a plain client (one master and its
// replica, as behind Sentinel), WaitReplicas 1 publishes and the replica
// holds every acknowledged message; WaitReplicas 2 fails with
// ErrNotReplicated.
func TestWaitReplicasSingleNode(t *testing.T) {
	ctx := context.Background()
	fastSync := []string{"--repl-diskless-sync-delay", "0"}
	master := redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: fastSync})
	replica := redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: append(fastSync,
		"--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))})
	client := master.Client(t)
	redistest.WaitFor(t, waitTimeout, func() bool {
		info, err := client.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, "the replica in sync")

	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client, WaitReplicas: 1}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	later := message.NewMessage(watermill.NewUUID(), []byte("later"))
	delay.Message(later, delay.For(time.Hour))
	publish(t, pub, "wait-topic", append(newMessages("m", 50), later)...)
	// WAIT returned 1, so the replica already has every entry: no waiting.
	if n, err := replica.Client(t).XLen(ctx, "wait-topic").Result(); err != nil || n != 50 {
		t.Errorf("replica holds %d entries (%v), want 50", n, err)
	}
	if n, err := replica.Client(t).ZCard(ctx, redrive.KeysFor("wait-topic").Delayed).Result(); err != nil || n != 1 {
		t.Errorf("replica holds %d delayed members (%v), want 1", n, err)
	}

	two, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client, WaitReplicas: 2, WaitTimeout: 20 * time.Millisecond}, errorsOnlyLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer two.Close()
	if err := two.Publish("wait-topic", newMessages("x", 1)...); !errors.Is(err, redrive.ErrNotReplicated) {
		t.Errorf("WaitReplicas 2 with one replica: %v, want ErrNotReplicated", err)
	}
}
