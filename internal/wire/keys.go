package wire

import (
	"strconv"
	"strings"

	"github.com/redrive-go/redrive/internal/hashslot"
)

// keyNamespace separates redrive's own keys from the application's.
const keyNamespace = "redrive"

// TopicPrefix returns the prefix of every key redrive keeps for topic,
// "{t}:redrive:<topic>": the tag {t} puts all of them in topic's Redis
// Cluster slot (see redrive.TopicKeys for the layout).
func TopicPrefix(topic string) string {
	return slotPrefix(topic) + ":" + keyNamespace + ":" + topic
}

// AdminKey returns a key in topic's cluster slot, in redrive's own namespace,
// for bookkeeping by the admin tools (such as the markers that make a
// cross-slot requeue idempotent). name must be unique to its use.
func AdminKey(topic, name string) string {
	return TopicPrefix(topic) + ":admin:" + name
}

// slotPrefix returns a "{tag}" that hashes to the same slot as topic.
func slotPrefix(topic string) string {
	if tag, ok := hashslot.Tag(topic); ok {
		return "{" + tag + "}"
	}
	if !strings.Contains(topic, "}") {
		return "{" + topic + "}"
	}
	// A '}' without a valid tag: wrapping the topic in braces would hash a
	// different string, so search for a short tag with the same slot. There are
	// 16384 slots, so a few tens of thousands of candidates always suffice.
	want := hashslot.Of(topic)
	for i := 0; ; i++ {
		candidate := "s" + strconv.Itoa(i)
		if hashslot.Of(candidate) == want {
			return "{" + candidate + "}"
		}
	}
}
