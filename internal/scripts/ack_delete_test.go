package scripts

import (
	"strings"
	"testing"
)

func TestAckDelete(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("retry")
	ids := streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"}, map[string]interface{}{"n": "2"}, map[string]interface{}{"n": "3"})
	readAs(t, client, stream, "c")

	acked, err := AckDelete.Run(ctx, client, AckDeleteArgs{Stream: stream, Group: "g", IDs: ids[:2]})
	if err != nil || acked != 2 {
		t.Fatalf("AckDelete = %d, %v; want 2 acked", acked, err)
	}
	if n := pendingCount(t, client, stream); n != 1 {
		t.Errorf("%d pending, want 1", n)
	}
	if e := onlyEntry(t, client, stream); e.ID != ids[2] {
		t.Errorf("left entry %s, want %s", e.ID, ids[2])
	}

	// Queued on a pipeline (as the acker sends it), the reply is read after
	// Exec; an entry acked before counts 0 but is still deleted.
	if err := AckDelete.Load(ctx, client); err != nil {
		t.Fatal(err)
	}
	pipe := client.Pipeline()
	cmd := AckDelete.Queue(ctx, pipe, AckDeleteArgs{Stream: stream, Group: "g", IDs: []string{ids[2], ids[0]}})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if acked, err := cmd.Reply(); err != nil || acked != 1 {
		t.Errorf("queued AckDelete = %d, %v; want 1", acked, err)
	}
	if n := xlen(t, client, stream); n != 0 {
		t.Errorf("stream keeps %d entries", n)
	}

	_, err = AckDelete.Run(ctx, client, AckDeleteArgs{Stream: stream, Group: "g"})
	if err == nil || !strings.Contains(err.Error(), "script ack_delete: bad arguments") {
		t.Errorf("no IDs: err = %v, want one naming the script", err)
	}
}
