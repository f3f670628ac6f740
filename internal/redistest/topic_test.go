package redistest

import (
	"regexp"
	"testing"
)

func TestRandomTopic(t *testing.T) {
	shape := regexp.MustCompile(`^orders-[0-9a-f]{16}$`)
	seen := make(map[string]bool)
	for range 1000 {
		topic := RandomTopic("orders-")
		if !shape.MatchString(topic) {
			t.Fatalf("RandomTopic(%q) = %q, want prefix and 16 hex digits", "orders-", topic)
		}
		if seen[topic] {
			t.Fatalf("RandomTopic returned %q twice", topic)
		}
		seen[topic] = true
	}
}
