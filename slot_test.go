package redrive

import (
	"strings"
	"testing"
)

func TestHashSlotKnownValues(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	cases := map[string]int{
		"123456789":            12739,
		"foo":                  12182,
		"{user1000}.following": HashSlot("user1000"),
		"foo{}{bar}":           HashSlot("foo{}{bar}"),
	}
	for key, want := range cases {
		if got := HashSlot(key); got != want {
			t.Errorf("HashSlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestKeysShareTheTopicSlot(t *testing.T) {
	topics := []string{"orders", "a{b}c", "a}b", "{}x", "x{", "ü n i c o d e:with:colons", strings.Repeat("k", 1024), "}{", "{a}"}
	for _, topic := range topics {
		k := KeysFor(topic)
		want := HashSlot(topic)
		for _, key := range []string{k.Stream, k.Delayed, k.Poison, k.GroupRetry("g"), k.GroupRetryDelayed("g{x}")} {
			if got := HashSlot(key); got != want {
				t.Errorf("topic %q: key %q in slot %d, want %d", topic, key, got, want)
			}
		}
	}
}
