package redrive

import (
	"strings"
	"testing"

	"github.com/redrive-go/redrive/internal/hashslot"
)

func TestKeysShareTheTopicSlot(t *testing.T) {
	topics := []string{"orders", "a{b}c", "a}b", "{}x", "x{", "ü n i c o d e:with:colons", strings.Repeat("k", 1024), "}{", "{a}"}
	for _, topic := range topics {
		k := KeysFor(topic)
		want := hashslot.Of(topic)
		for _, key := range []string{k.Stream, k.Delayed, k.Poison, k.GroupRetry("g"), k.GroupRetryDelayed("g{x}")} {
			if got := hashslot.Of(key); got != want {
				t.Errorf("topic %q: key %q in slot %d, want %d", topic, key, got, want)
			}
		}
	}
}
