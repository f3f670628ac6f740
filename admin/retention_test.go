package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// TrimTopic's dry run counts what a trim would remove and removes nothing;
// the trim then removes exactly that; topic info and RetainedEntries name
// the group that holds the rest back; DeleteGroup lets the next trim go on.
func TestTrimTopicAndDeleteGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := newClient(t)
	a := newTestAdmin(t, client, 7) // small batches: the dry-run count pages
	topic := redistest.RandomTopic("admin-trim-")
	keys := redrive.KeysFor(topic)
	createGroup(t, client, topic, "done")
	createGroup(t, client, topic, "stuck")
	redistest.AddEntriesAt(t, client, topic, 1000, 50)
	redistest.Ack(t, client, topic, "done", redistest.ReadGroup(t, client, topic, "done", 100)...)
	redistest.ReadGroup(t, client, topic, "stuck", 20) // read, never acked
	client.ZAdd(ctx, keys.GroupRetryDelayed("stuck"), redis.Z{Score: 1, Member: "m"})

	dry, err := a.TrimTopic(ctx, topic, TrimOptions{RetainAcked: time.Millisecond, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.WouldTrim != 0 || dry.Trimmed != 0 || dry.Length != 50 {
		t.Fatalf("dry run with stuck holding everything: %+v", dry)
	}
	held := dry.HoldingBack()
	if len(held) != 1 || held[0].Group != "stuck" || held[0].Pending != 20 || held[0].Retained != 50 {
		t.Fatalf("holding back: %+v, want stuck with 20 pending and 50 in all", held)
	}
	info, err := a.TopicInfo(ctx, topic, TopicInfoOptions{RetainAcked: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range info.Groups {
		if (g.Name == "stuck") != g.Retention.HoldsBack {
			t.Fatalf("topic info retention of %s: %+v", g.Name, g.Retention)
		}
	}
	groups, err := a.RetainedEntries(ctx, topic, time.Millisecond)
	if err != nil || len(groups) != 2 {
		t.Fatalf("RetainedEntries: %+v %v", groups, err)
	}

	if _, err := a.DeleteGroup(ctx, topic, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteGroup of a missing group: %v, want ErrNotFound", err)
	}
	del, err := a.DeleteGroup(ctx, topic, "stuck")
	if err != nil {
		t.Fatal(err)
	}
	if del.Pending != 20 || del.Unread != 30 || del.Retries != 1 {
		t.Fatalf("DeleteGroup = %+v, want 20 pending, 30 unread, 1 retry", del)
	}
	if n, _ := client.Exists(ctx, keys.GroupRetry("stuck"), keys.GroupRetryDelayed("stuck")).Result(); n != 0 {
		t.Fatalf("the deleted group's retry keys remain (%d)", n)
	}

	dry, err = a.TrimTopic(ctx, topic, TrimOptions{RetainAcked: time.Millisecond, DryRun: true})
	if err != nil || dry.WouldTrim != 50 || dry.Length != 50 {
		t.Fatalf("dry run after the delete: %+v %v, want 50 would go", dry, err)
	}
	done, err := a.TrimTopic(ctx, topic, TrimOptions{RetainAcked: time.Millisecond})
	if err != nil || done.Trimmed != 50 || done.Length != 0 {
		t.Fatalf("trim after the delete: %+v %v, want all 50 removed", done, err)
	}
	if _, err := a.TrimTopic(ctx, redistest.RandomTopic("admin-none-"), TrimOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("trim of a missing topic: %v, want ErrNotFound", err)
	}
	if _, err := a.TrimTopic(ctx, topic, TrimOptions{RetainAcked: -1}); err == nil {
		t.Fatal("negative retention accepted")
	}
}
