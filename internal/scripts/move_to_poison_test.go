package scripts

import (
	"reflect"
	"testing"
)

func TestMoveToPoison(t *testing.T) {
	ctx, client, k := setup(t)
	stream, poison := k.key("s"), k.key("poison")
	ids := streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"}, map[string]interface{}{"n": "2"})
	readAs(t, client, stream, "c")
	fields := map[string]interface{}{"payload": "p", "metadata": "m", "_watermill_message_uuid": "u"}
	args := MoveToPoisonArgs{Stream: stream, PoisonStream: poison, Group: "g", EntryID: ids[0], Fields: fields}

	res, err := MoveToPoison.Run(ctx, client, args)
	if err != nil || !res.Written || res.PoisonID == "" {
		t.Fatalf("MoveToPoison = %+v, %v; want written", res, err)
	}
	e := onlyEntry(t, client, poison)
	if e.ID != res.PoisonID || !reflect.DeepEqual(e.Values, fields) {
		t.Errorf("poison entry %s %v, want %s %v", e.ID, e.Values, res.PoisonID, fields)
	}
	if n := pendingCount(t, client, stream); n != 1 {
		t.Errorf("%d pending, want 1: the entry is acked", n)
	}
	if n := xlen(t, client, stream); n != 2 {
		t.Errorf("stream has %d entries, want 2: DeleteEntry false keeps it", n)
	}

	// No longer pending: another consumer settled it, nothing is written.
	res, err = MoveToPoison.Run(ctx, client, args)
	if err != nil || res.Written || res.PoisonID != "" {
		t.Errorf("entry no longer pending: %+v, %v; want not written", res, err)
	}
	if n := xlen(t, client, poison); n != 1 {
		t.Errorf("poison stream has %d entries, want 1", n)
	}
	// Unless this consumer acked it itself.
	args.AckedLocally = true
	if res, err = MoveToPoison.Run(ctx, client, args); err != nil || !res.Written {
		t.Errorf("acked locally: %+v, %v; want written", res, err)
	}

	args = MoveToPoisonArgs{Stream: stream, PoisonStream: poison, Group: "g", EntryID: ids[1], DeleteEntry: true, Fields: fields}
	if res, err = MoveToPoison.Run(ctx, client, args); err != nil || !res.Written {
		t.Fatalf("DeleteEntry: %+v, %v", res, err)
	}
	if e := onlyEntry(t, client, stream); e.ID != ids[0] {
		t.Errorf("left %s in the stream, want %s: DeleteEntry deletes the entry", e.ID, ids[0])
	}

	if _, err := MoveToPoison.Run(ctx, nil, MoveToPoisonArgs{Stream: stream}); err == nil {
		t.Error("no fields: no error")
	}
}
