package admin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/internal/wire"
)

func TestIsInternalKey(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"orders", "a:b:c", "{tag}x", "we}ird", "x:retry:y"} {
		k := redrive.KeysFor(topic)
		for _, key := range []string{k.Poison, k.Delayed, k.GroupRetry("g"), k.GroupRetryDelayed("g:h"), wire.AdminKey(k.Topic, "m")} {
			if !IsInternalKey(key) {
				t.Errorf("IsInternalKey(%q) = false, want true (a key of topic %q)", key, topic)
			}
		}
		if IsInternalKey(k.Stream) {
			t.Errorf("IsInternalKey(%q) = true for the topic itself", k.Stream)
		}
	}
	for _, key := range []string{"{x}:redrive:", "{x}:redrive:y:poison", "{orders}:redrive:orders:other", "plain:redrive:orders:poison"} {
		if IsInternalKey(key) {
			t.Errorf("IsInternalKey(%q) = true, want false", key)
		}
	}
}

// ListTopics lists topics (not redrive's own streams) with what they hold,
// and marks groups that have work but no reading consumer.
func TestListTopics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	prefix := redistest.RandomTopic("admin-list-") + "."
	busy, quiet, poisonTopic := prefix+"busy", prefix+"quiet", prefix+"poison"
	keys := redrive.KeysFor(busy)

	createGroup(t, client, busy, "billing")
	createGroup(t, client, busy, "audit")
	for i := range 4 {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: busy, Values: map[string]any{redrive.UUIDHeaderKey: fmt.Sprint(i), "payload": "x", "metadata": ""}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// billing reads all four and holds them (pending); audit reads none
	// (lag 4) and has no consumer at all.
	if err := client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "billing", Consumer: "c1", Streams: []string{busy, ">"}}).Err(); err != nil {
		t.Fatal(err)
	}
	client.ZAdd(ctx, keys.Delayed, redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"})
	client.ZAdd(ctx, keys.GroupRetryDelayed("billing"), redis.Z{Score: 1, Member: "r"})
	client.XAdd(ctx, &redis.XAddArgs{Stream: keys.GroupRetry("audit"), Values: map[string]any{"k": "v"}})
	addPoisoned(t, client, keys.Poison, poisoned{topic: busy, handler: "billing", reason: "max retries exceeded"})
	addPoisoned(t, client, poisonTopic, poisoned{topic: busy, handler: "billing", reason: "max retries exceeded"})
	client.XAdd(ctx, &redis.XAddArgs{Stream: quiet, Values: map[string]any{"payload": "x"}})
	// Not a stream: never listed.
	client.Set(ctx, prefix+"string", "v", time.Minute)
	t.Cleanup(func() {
		client.Del(context.Background(), busy, quiet, poisonTopic, prefix+"string", keys.Delayed, keys.Poison,
			keys.GroupRetry("billing"), keys.GroupRetry("audit"), keys.GroupRetryDelayed("billing"))
	})

	// A small COUNT makes SCAN take many steps on the shared server.
	names, err := a.TopicNames(ctx, prefix+"*", 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{busy, poisonTopic, quiet}; !slices.Equal(names, want) {
		t.Fatalf("TopicNames = %q, want %q", names, want)
	}
	list, err := a.ListTopics(ctx, ListTopicsOptions{Match: prefix + "*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("ListTopics returned %d topics, want 3: %+v", len(list), list)
	}
	b := list[0]
	if b.Topic != busy || b.Length != 4 || b.Groups != 2 || b.Delayed != 2 || b.Poisoned != 1 || b.PoisonStream != keys.Poison {
		t.Errorf("busy = %+v", b)
	}
	// Pending: billing's 4; lag: audit's 4; retries: billing's delayed one
	// and audit's due one.
	if b.Pending != 4 || b.Lag != 4 || b.RetriesWaiting != 2 {
		t.Errorf("busy pending/lag/retries = %d/%d/%d, want 4/4/2", b.Pending, b.Lag, b.RetriesWaiting)
	}
	if b.MemoryBytes <= 0 {
		t.Errorf("busy memory = %d, want > 0", b.MemoryBytes)
	}
	// audit has work and no consumer; billing's consumer just read.
	if !slices.Equal(b.IdleGroups, []string{"audit"}) {
		t.Errorf("busy idle groups = %q, want [audit]", b.IdleGroups)
	}
	if b.IsPoisonTopic || b.LastEntryAt.IsZero() {
		t.Errorf("busy: IsPoisonTopic %v, LastEntryAt %v", b.IsPoisonTopic, b.LastEntryAt)
	}
	if p := list[1]; p.Topic != poisonTopic || !p.IsPoisonTopic || p.Length != 1 {
		t.Errorf("poison topic = %+v, want IsPoisonTopic and length 1", p)
	}
	if q := list[2]; q.Topic != quiet || q.Groups != 0 || q.Lag != 0 || len(q.IdleGroups) != 0 {
		t.Errorf("quiet = %+v", q)
	}
}

// On a cluster, ListTopics scans every master and reads each topic on its
// own node.
func TestListTopicsOnCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := redistest.StartCluster(t, redistest.ClusterOptions{ReplicasPerMaster: -1})
	client := cluster.Client(t)
	a := newTestAdmin(t, client, 0)
	var want []string
	for i := range 20 {
		topic := fmt.Sprintf("t%02d", i)
		want = append(want, topic)
		createGroup(t, client, topic, "g")
		client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]any{"payload": "x"}})
		addPoisoned(t, client, redrive.KeysFor(topic).Poison, poisoned{topic: topic, reason: "r"})
	}
	list, err := a.ListTopics(ctx, ListTopicsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		got = append(got, s.Topic)
		if s.Length != 1 || s.Lag != 1 || s.Poisoned != 1 || s.Groups != 1 {
			t.Errorf("%s = %+v", s.Topic, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("topics = %q, want %q", got, want)
	}
}

// PagePoisoned pages by entry ID in both directions, filters by handler, and
// never reads more than MaxScan entries for a page.
func TestPagePoisoned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 4)
	stream := redistest.RandomTopic("admin-page-")
	t.Cleanup(func() { client.Del(context.Background(), stream) })
	var all, billing []string
	for i := range 25 {
		handler := "shipping"
		if i%5 == 0 {
			handler = "billing"
		}
		id, _ := addPoisoned(t, client, stream, poisoned{topic: "orders", handler: handler, reason: "max retries exceeded", id: fmt.Sprintf("%d-1", 1000+i)})
		all = append(all, id)
		if handler == "billing" {
			billing = append(billing, id)
		}
	}

	collect := func(opts PagePoisonedOptions) (ids []string, pages int) {
		for {
			page, err := a.PagePoisoned(ctx, stream, opts)
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != 25 {
				t.Fatalf("Total = %d, want 25", page.Total)
			}
			pages++
			for _, m := range page.Messages {
				ids = append(ids, m.ID)
			}
			if page.Next == "" {
				return ids, pages
			}
			opts.Cursor = page.Next
		}
	}
	if got, pages := collect(PagePoisonedOptions{Limit: 10}); !slices.Equal(got, all) || pages != 3 {
		t.Errorf("oldest first: %d pages %q, want 3 pages %q", pages, got, all)
	}
	reversed := slices.Clone(all)
	slices.Reverse(reversed)
	if got, _ := collect(PagePoisonedOptions{Limit: 7, NewestFirst: true}); !slices.Equal(got, reversed) {
		t.Errorf("newest first: %q, want %q", got, reversed)
	}
	if got, _ := collect(PagePoisonedOptions{Handler: "billing", Limit: 2}); !slices.Equal(got, billing) {
		t.Errorf("handler billing: %q, want %q", got, billing)
	}
	// A page reads at most MaxScan entries: with a filter that matches one
	// entry in five, six entries give one match and a cursor.
	page, err := a.PagePoisoned(ctx, stream, PagePoisonedOptions{Handler: "billing", MaxScan: 6})
	if err != nil {
		t.Fatal(err)
	}
	if page.Scanned != 6 || len(page.Messages) != 2 || page.Next != all[5] {
		t.Errorf("MaxScan 6: scanned %d, %d messages, next %q; want 6, 2, %q", page.Scanned, len(page.Messages), page.Next, all[5])
	}
	// Until bounds the listing, in both directions.
	if got, _ := collect(PagePoisonedOptions{Filter: Selector{ReasonContains: "MAX"}, Handler: "billing", Until: all[10], Limit: 1}); !slices.Equal(got, billing[:3]) {
		t.Errorf("Until %s: %q, want %q", all[10], got, billing[:3])
	}
	if got, _ := collect(PagePoisonedOptions{Until: all[3], NewestFirst: true}); !slices.Equal(got, []string{all[3], all[2], all[1], all[0]}) {
		t.Errorf("Until, newest first: %q", got)
	}
	// Every entry was poisoned in 1970, so the age filter keeps them all;
	// a reason that matches nothing keeps none.
	if got, _ := collect(PagePoisonedOptions{Filter: Selector{OlderThan: time.Hour, ReasonContains: "nope"}}); len(got) != 0 {
		t.Errorf("no match: %q", got)
	}
	if _, err := a.PagePoisoned(ctx, stream, PagePoisonedOptions{Cursor: "x"}); err == nil || !strings.Contains(err.Error(), "cursor") {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestIsPoisonStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 0)
	topic := redistest.RandomTopic("admin-ispoison-")
	poisonTopic, plain, str := topic+".poison", topic+".plain", topic+".string"
	addPoisoned(t, client, poisonTopic, poisoned{topic: topic, reason: "r"})
	client.XAdd(ctx, &redis.XAddArgs{Stream: plain, Values: map[string]any{"payload": "x"}})
	client.Set(ctx, str, "v", time.Minute)
	t.Cleanup(func() { client.Del(context.Background(), poisonTopic, plain, str) })
	for stream, want := range map[string]bool{
		PoisonStreamOf(topic): true, poisonTopic: true, plain: false, str: false, topic + ".none": false,
		redrive.KeysFor(topic).GroupRetry("poison"): false,
	} {
		if got, err := a.IsPoisonStream(ctx, stream); err != nil || got != want {
			t.Errorf("IsPoisonStream(%q) = %v, %v; want %v", stream, got, err, want)
		}
	}
	if got, ok := PoisonStreamTopic(PoisonStreamOf("a:b")); !ok || got != "a:b" {
		t.Errorf("PoisonStreamTopic = %q, %v", got, ok)
	}
}
