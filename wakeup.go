package redrive

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Delayed-message movers sleep until the next due time. Whoever schedules a
// message earlier than that wakes the movers of that delayed set: in this
// process through this registry, and in every process through the topic's
// wake-up channel (Redis Pub/Sub, see wakeup_pubsub.go), which feeds the
// same registry. So delays fire on time without polling; the movers' own
// polls (DelayedPollInterval) are a safety net for wake-ups that were lost.
type wakeupRegistry struct {
	mu        sync.Mutex
	listeners map[string]map[chan time.Time]struct{}
}

var processWakeups = &wakeupRegistry{listeners: map[string]map[chan time.Time]struct{}{}}

func (r *wakeupRegistry) listen(key string) chan time.Time {
	ch := make(chan time.Time, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners[key] == nil {
		r.listeners[key] = map[chan time.Time]struct{}{}
	}
	r.listeners[key][ch] = struct{}{}
	return ch
}

func (r *wakeupRegistry) forget(key string, ch chan time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.listeners[key], ch)
	if len(r.listeners[key]) == 0 {
		delete(r.listeners, key)
	}
}

// listening tells whether a mover of this process runs on key.
func (r *wakeupRegistry) listening(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.listeners[key]) > 0
}

// notify tells the movers of key that a message is due at due. It never
// blocks: a mover that has a wake-up pending keeps the earlier of the two.
func (r *wakeupRegistry) notify(key string, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.listeners[key] {
		select {
		case ch <- due:
		default:
			select {
			case old := <-ch:
				if old.Before(due) {
					due = old
				}
			default:
			}
			select {
			case ch <- due:
			default:
			}
		}
	}
}

// wakeupChannel is the Pub/Sub channel that announces the delayed messages
// of the topic (its delayed set and its groups' retry sets) to the movers of
// every process. It carries the topic's hash tag, like its keys, so an ACL
// channel pattern covers it the way a key pattern covers the keys.
func (k TopicKeys) wakeupChannel() string {
	return k.prefix + ":wakeup"
}

// claimWakeupPrefix starts a wake-up message that asks the claimers of a
// consumer group to claim now: a consumer gave entries back. Due-time
// wake-ups start with a number, so the two never mix.
const claimWakeupPrefix = "claim "

// claimWakeupPayload asks the claimers of group to claim now.
func claimWakeupPayload(group string) string { return claimWakeupPrefix + group }

// processClaimWakeups reaches the claimers of this process, by topic and
// group: a claim wake-up received on a topic's channel runs their pass at
// once. The registry's keys are "<wake-up channel> <group>".
var processClaimWakeups = &wakeupRegistry{listeners: map[string]map[chan time.Time]struct{}{}}

// claimWakeupKey is the key in processClaimWakeups of the claimers of group
// on the topic whose wake-up channel is channel.
func claimWakeupKey(channel, group string) string {
	return channel + " " + group
}

// wakeupPayload is a wake-up message: the due time (Unix milliseconds) and
// the delayed set it concerns.
func wakeupPayload(delayedKey string, due time.Time) string {
	return strconv.FormatInt(due.UnixMilli(), 10) + " " + delayedKey
}

// parseWakeupPayload reads a wake-up message; false when it is not one.
func parseWakeupPayload(payload string) (delayedKey string, due time.Time, ok bool) {
	ms, key, found := strings.Cut(payload, " ")
	if !found || key == "" {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return key, time.UnixMilli(n), true
}
