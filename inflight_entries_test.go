package redrive

import (
	"slices"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

func TestInflightEntries(t *testing.T) {
	held := newInflightEntries()
	waiting := &pendingEntry{stream: "s", id: "1-1"}
	out := &pendingEntry{stream: "s", id: "1-2"}
	retry := &pendingEntry{stream: "r", id: "1-1"}
	for _, pe := range []*pendingEntry{waiting, out, retry} {
		held.track(pe)
	}
	out.handedOut = message.NewMessage(watermill.NewUUID(), nil)
	out.out.Store(true)

	ids := held.ids()
	slices.Sort(ids["s"])
	if len(ids) != 2 || !slices.Equal(ids["s"], []string{"1-1", "1-2"}) || !slices.Equal(ids["r"], []string{"1-1"}) {
		t.Fatalf("ids %v, want s: 1-1 1-2, r: 1-1", ids)
	}
	notOut := held.notHandedOut()
	if len(notOut) != 2 || slices.Contains(notOut, out) {
		t.Fatalf("not handed out: %v, want the two entries no handler has", notOut)
	}
	if !held.awaitingHandlers() {
		t.Fatal("a handed-out message neither acked nor nacked is not awaited")
	}
	out.handedOut.Ack()
	if held.awaitingHandlers() {
		t.Fatal("an acked message is still awaited")
	}
	if !held.untrack(waiting) || held.untrack(waiting) {
		t.Fatal("untrack must report true once, then false")
	}
}
