package tests

// The soak run: messages published over most of the run, 5% of
// them failing transiently (their first attempt) and 1% permanently, handled
// by 4 consumer processes of one consumer group (TestFaultChildProcess:
// redrive router, subscriber and retry middleware) that are killed with
// SIGKILL at random and restarted. At the end, exact accounting: every
// message was handled or is in the poison topic, none is lost; duplicates
// are counted and reported, never failed on.
//
// The duration and the number of messages are settings:
//
//	go test ./tests -run TestSoak -v -redrive.soak.duration=2m -redrive.soak.messages=100000
//
// or REDRIVE_SOAK_DURATION=2m REDRIVE_SOAK_MESSAGES=100000. The test is
// skipped with -short.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

const (
	// soakDefaultDuration is how long consumers are killed and restarted
	// in CI; draining what is left takes a few seconds more.
	soakDefaultDuration = 90 * time.Second
	// soakDefaultMessages is the soak target's volume. Measured on the 2-core CI
	// machine under -race (4 race-enabled consumer processes, the publisher
	// and Redis sharing the cores): 100,000 messages published over 60 s
	// are handled as they come, about 1,700 msg/s, using under one core.
	soakDefaultMessages = 100000

	soakConsumers = 4
)

var (
	soakDurationFlag = flag.Duration("redrive.soak.duration", 0,
		"how long the soak test kills and restarts consumers (default $REDRIVE_SOAK_DURATION, else 90s)")
	soakMessagesFlag = flag.Int("redrive.soak.messages", 0,
		"how many messages the soak test publishes (default $REDRIVE_SOAK_MESSAGES, else 100000)")
)

// soakSettings returns the duration and the number of messages: flag, else
// environment, else default.
func soakSettings(t *testing.T) (time.Duration, int) {
	t.Helper()
	duration := soakDefaultDuration
	if v := os.Getenv("REDRIVE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("REDRIVE_SOAK_DURATION=%q is not a positive duration", v)
		}
		duration = d
	}
	if *soakDurationFlag > 0 {
		duration = *soakDurationFlag
	}
	messages := soakDefaultMessages
	if v := os.Getenv("REDRIVE_SOAK_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("REDRIVE_SOAK_MESSAGES=%q is not a number of at least 100", v)
		}
		messages = n
	}
	if *soakMessagesFlag > 0 {
		messages = *soakMessagesFlag
	}
	return duration, messages
}

// soakRaceEnabled reports whether the test binary was built with -race.
func soakRaceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// soakKind is what the consumers do with message i: 1% fail permanently, 5%
// fail their first attempt, the rest succeed.
func soakKind(i int) string {
	switch r := i % 100; {
	case r == 0:
		return faultKindPermanent
	case r <= 5:
		return faultKindTransient
	}
	return ""
}

// soakSlot is one of the consumers: a process, or none while it is down.
type soakSlot struct {
	cfg       faultChildConfig
	child     *faultChild
	restartAt time.Time
	starts    int
}

// TestSoakConsumersKilledAtRandom is not parallel: it loads both cores for
// its whole duration, and its figures are only meaningful alone.
func TestSoakConsumersKilledAtRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("soak run: skipped with -short")
	}
	duration, n := soakSettings(t)
	began := time.Now()
	seed1, seed2 := rand.Uint64(), rand.Uint64()
	rng := rand.New(rand.NewPCG(seed1, seed2))
	t.Logf("soak: %d messages, %v of kills, %d consumers, seed %d,%d", n, duration, soakConsumers, seed1, seed2)

	srv := redistest.StartServer(t, redistest.ServerOptions{})
	client := srv.Client(t)
	ctx := context.Background()
	topic := redistest.RandomTopic("soak-")
	keys := redrive.KeysFor(topic)
	const group = "soak"
	if err := client.XGroupCreateMkStream(ctx, topic, group, "0").Err(); err != nil {
		t.Fatalf("XGROUP CREATE: %v", err)
	}
	base := faultChildConfig{
		Addr:                 srv.Addr(),
		Topic:                topic,
		Group:                group,
		Handled:              topic + ":test-handled",
		PerConsumer:          topic + ":test-per-consumer",
		MaxIdleTime:          faultMaxIdleTime,
		ClaimInterval:        faultClaimInterval,
		RetryInitialInterval: 100 * time.Millisecond,
	}

	slots := make([]*soakSlot, soakConsumers)
	for i := range slots {
		cfg := base
		cfg.Consumer = fmt.Sprintf("consumer-%d", i)
		slots[i] = &soakSlot{cfg: cfg}
		slots[i].child = faultStartChild(t, cfg)
		slots[i].starts++
	}
	for _, s := range slots {
		s.child.waitReady(t)
	}

	// The publisher spreads the messages over the first two thirds of the
	// run, in batches, so consumers are killed while it publishes and
	// afterwards.
	type published struct {
		kinds map[string]string
		took  time.Duration
		err   error
	}
	pubDone := make(chan published, 1)
	pubStart := time.Now()
	go func() {
		kinds := make(map[string]string, n)
		pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, nil)
		if err != nil {
			pubDone <- published{err: err}
			return
		}
		defer pub.Close()
		const batch = 100
		span := duration * 2 / 3
		for start := 0; start < n; start += batch {
			if wait := time.Until(pubStart.Add(time.Duration(int64(span) * int64(start) / int64(n)))); wait > 0 {
				time.Sleep(wait)
			}
			msgs := make([]*message.Message, 0, batch)
			for i := start; i < min(start+batch, n); i++ {
				m := message.NewMessage(watermill.NewUUID(), []byte("soak-"+strconv.Itoa(i)))
				if kind := soakKind(i); kind != "" {
					m.Metadata.Set(faultKindKey, kind)
				}
				kinds[m.UUID] = soakKind(i)
				msgs = append(msgs, m)
			}
			// Redis is not faulted here: a publish must succeed.
			if err := pub.Publish(topic, msgs...); err != nil {
				pubDone <- published{err: err}
				return
			}
		}
		pubDone <- published{kinds: kinds, took: time.Since(pubStart)}
	}()

	// Kill a random running consumer every 1-4 s; each comes back, under
	// the same consumer name, 0-1.5 s after its death. Sleeps here pace
	// the faults; nothing is asserted on timing.
	var (
		kills, pendingAtKills int
		killedBefore          = map[string]int{}
	)
	pendingOf := func(consumer string) int {
		return len(faultPendingIDs(t, client, topic, group, consumer)) +
			len(faultPendingIDs(t, client, keys.GroupRetry(group), group, consumer))
	}
	deadline := began.Add(duration)
	nextKill := time.Now().Add(time.Second + rand.N(3*time.Second))
	for time.Now().Before(deadline) {
		now := time.Now()
		for _, s := range slots {
			switch {
			case s.child == nil && now.After(s.restartAt):
				s.child = faultStartChild(t, s.cfg)
				s.starts++
			case s.child != nil && s.child.exitedUnexpectedly():
				t.Fatalf("consumer process %s exited by itself (%v):\n%s", s.cfg.Consumer, s.child.cmd.ProcessState, faultTail(s.child.logPath, 3000))
			}
		}
		if now.After(nextKill) {
			var alive []*soakSlot
			for _, s := range slots {
				if s.child != nil {
					alive = append(alive, s)
				}
			}
			if len(alive) > 0 {
				s := alive[rng.IntN(len(alive))]
				s.child.kill(t)
				kills++
				killedBefore[s.cfg.Consumer]++
				// What it held in Redis: messages read or handled and not
				// acked, which another consumer (or its next self)
				// delivers again.
				pendingAtKills += pendingOf(s.cfg.Consumer)
				s.child = nil
				s.restartAt = time.Now().Add(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
			}
			nextKill = time.Now().Add(time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))
		}
		time.Sleep(50 * time.Millisecond)
	}
	killPhase := time.Since(began)

	// Every consumer back up to drain what is left.
	for _, s := range slots {
		if s.child == nil {
			s.child = faultStartChild(t, s.cfg)
			s.starts++
		}
	}
	for _, s := range slots {
		s.child.waitReady(t)
	}
	var pubResult published
	select {
	case pubResult = <-pubDone:
	case <-time.After(faultWait):
		t.Fatalf("the publisher did not finish within %v after the kills", faultWait)
	}
	if pubResult.err != nil {
		t.Fatalf("publish: %v", pubResult.err)
	}
	kinds := pubResult.kinds

	// Settled: every entry of the stream delivered to the group, nothing
	// pending, nothing in the group's retry stream or retry set. Read in
	// one MULTI so a message moving between them cannot be missed.
	drainBegan := time.Now()
	var status string
	drainWait := max(2*time.Minute, duration)
	redistest.WaitFor(t, drainWait, func() bool {
		for _, s := range slots {
			if s.child.exitedUnexpectedly() {
				t.Fatalf("consumer process %s exited by itself (%v):\n%s", s.cfg.Consumer, s.child.cmd.ProcessState, faultTail(s.child.logPath, 3000))
			}
		}
		var (
			info    *redis.XInfoStreamCmd
			groups  *redis.XInfoGroupsCmd
			retry   *redis.IntCmd
			delayed *redis.IntCmd
			handled *redis.IntCmd
		)
		_, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			info = p.XInfoStream(ctx, topic)
			groups = p.XInfoGroups(ctx, topic)
			retry = p.XLen(ctx, keys.GroupRetry(group))
			delayed = p.ZCard(ctx, keys.GroupRetryDelayed(group))
			handled = p.HLen(ctx, base.Handled)
			return nil
		})
		if err != nil {
			status = err.Error()
			return false
		}
		var g redis.XInfoGroup
		for _, x := range groups.Val() {
			if x.Name == group {
				g = x
			}
		}
		status = fmt.Sprintf("%d handled; stream last ID %s, group delivered up to %s, %d pending, %d in the retry stream, %d in the retry set",
			handled.Val(), info.Val().LastGeneratedID, g.LastDeliveredID, g.Pending, retry.Val(), delayed.Val())
		return g.LastDeliveredID == info.Val().LastGeneratedID && g.Pending == 0 && retry.Val() == 0 && delayed.Val() == 0
	}, "the group to settle: %v", faultLazy(func() string { return status }))
	drained := time.Since(drainBegan)
	for _, s := range slots {
		s.child.stop(t)
	}

	// Exact accounting.
	handled := faultHandledCounts(t, client, base.Handled)
	poisonEntries, err := client.XRange(ctx, keys.Poison, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE poison: %v", err)
	}
	poisoned := map[string]int{}
	reasons := map[string]int{}
	for _, e := range poisonEntries {
		m, err := redrive.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
		if err != nil {
			t.Errorf("poison entry %s does not decode: %v", e.ID, err)
			continue
		}
		poisoned[m.UUID]++
		if kinds[m.UUID] != faultKindPermanent {
			reason := m.Metadata.Get(wmiddleware.ReasonForPoisonedKey)
			reason, _, _ = strings.Cut(reason, " (")
			reasons[fmt.Sprintf("%q message: %s", kinds[m.UUID], reason)]++
		}
	}
	var (
		lost, duplicates, poisonDuplicates, both, permanentHandled, wrongPoison int
		handledUnique, poisonedUnique, permanent, transient                     int
	)
	for uuid, kind := range kinds {
		switch kind {
		case faultKindPermanent:
			permanent++
		case faultKindTransient:
			transient++
		}
		h, p := handled[uuid], poisoned[uuid]
		if h > 0 {
			handledUnique++
			duplicates += h - 1
		}
		if p > 0 {
			poisonedUnique++
			poisonDuplicates += p - 1
		}
		switch {
		case h == 0 && p == 0:
			lost++
			if lost <= 10 {
				t.Errorf("message %s (%q) lost: neither handled nor poisoned", uuid, kind)
			}
		case h > 0 && p > 0:
			both++
		}
		if kind == faultKindPermanent && h > 0 {
			permanentHandled++
		}
		if kind != faultKindPermanent && p > 0 {
			wrongPoison++
		}
	}
	for uuid := range handled {
		if _, ok := kinds[uuid]; !ok {
			t.Errorf("a message that was never published was handled: %s", uuid)
		}
	}
	for uuid := range poisoned {
		if _, ok := kinds[uuid]; !ok {
			t.Errorf("a message that was never published was poisoned: %s", uuid)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d messages lost", lost, n)
	}
	if permanentHandled > 0 {
		t.Errorf("%d permanently failing messages were recorded as handled", permanentHandled)
	}
	perConsumer, err := client.HGetAll(ctx, base.PerConsumer).Result()
	if err != nil {
		t.Fatalf("HGETALL: %v", err)
	}
	restarts := 0
	for _, s := range slots {
		restarts += s.starts - 1
	}
	var reasonList []string
	for r, k := range reasons {
		reasonList = append(reasonList, fmt.Sprintf("%s: %d", r, k))
	}
	sort.Strings(reasonList)
	total := time.Since(began)
	t.Logf("FIGURES soak: messages=%d (permanent %d, transient %d) handled=%d poisoned=%d lost=%d duplicates=%d poison_duplicates=%d "+
		"handled_and_poisoned=%d non_permanent_poisoned=%d %v pending_with_killed_consumers=%d consumers=%d kills=%d restarts=%d kills_per_consumer=%v "+
		"handled_per_consumer=%v kill_phase=%v publish=%v drain=%v total=%v throughput=%.0f msg/s race=%v",
		n, permanent, transient, handledUnique, poisonedUnique, lost, duplicates, poisonDuplicates,
		both, wrongPoison, reasonList, pendingAtKills, soakConsumers, kills, restarts, killedBefore,
		perConsumer, killPhase.Round(time.Millisecond), pubResult.took.Round(time.Millisecond), drained.Round(time.Millisecond),
		total.Round(time.Millisecond), float64(n)/total.Seconds(), soakRaceEnabled())
}
