package redrive

import "sync"

// inflightEntries are the entries a subscription holds: read, and not yet
// settled or given back to the group, by stream and ID.
type inflightEntries struct {
	mu       sync.Mutex
	byStream map[string]map[string]*pendingEntry
}

func newInflightEntries() *inflightEntries {
	return &inflightEntries{byStream: map[string]map[string]*pendingEntry{}}
}

// track holds pe until untrack.
func (e *inflightEntries) track(pe *pendingEntry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byStream[pe.stream] == nil {
		e.byStream[pe.stream] = map[string]*pendingEntry{}
	}
	e.byStream[pe.stream][pe.id] = pe
}

// untrack stops holding pe; false when it was not held.
func (e *inflightEntries) untrack(pe *pendingEntry) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, held := e.byStream[pe.stream][pe.id]; !held {
		return false
	}
	delete(e.byStream[pe.stream], pe.id)
	return true
}

// ids lists the entries held, by stream.
func (e *inflightEntries) ids() map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := map[string][]string{}
	for stream, entries := range e.byStream {
		for id := range entries {
			ids[stream] = append(ids[stream], id)
		}
	}
	return ids
}

// awaitingHandlers tells whether a message out with a handler is neither
// acked nor nacked yet. Only once the dispatcher ended.
func (e *inflightEntries) awaitingHandlers() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, byID := range e.byStream {
		for _, pe := range byID {
			if !pe.out.Load() || pe.handedOut == nil {
				continue
			}
			select {
			case <-pe.handedOut.Acked():
			case <-pe.handedOut.Nacked():
			default:
				return true
			}
		}
	}
	return false
}

// notHandedOut lists the entries held that no handler has.
func (e *inflightEntries) notHandedOut() []*pendingEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	var entries []*pendingEntry
	for _, byID := range e.byStream {
		for _, pe := range byID {
			if !pe.out.Load() {
				entries = append(entries, pe)
			}
		}
	}
	return entries
}
