package redrive

import (
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// trimmedAwayLogInterval is the least time between two log lines about
// entries of the group found gone from the stream.
const trimmedAwayLogInterval = time.Minute

// startTrimming creates the subscription's trimmer: subscribers in a
// consumer group trim their topic's stream unless RetainAcked is negative.
// The group's retry stream needs no trimming: settled retries are deleted.
func (s *subscription) startTrimming() error {
	c := s.config()
	if s.group == "" || c.RetainAcked < 0 {
		return nil
	}
	trimmer, err := NewTrimmer(TrimmerConfig{
		Client:      s.client,
		Stream:      s.keys.Stream,
		RetainAcked: c.RetainAcked,
		Interval:    c.TrimInterval,
		OnTrim:      c.OnTrim,
	}, s.logger)
	if err != nil {
		return err
	}
	s.trimmer = trimmer
	return nil
}

// trimmedAwayLog counts the pending entries of the group that were found
// deleted from the stream (by a MAXLEN cap, XTRIM or XDEL by someone else),
// so they are reported without a line per entry.
type trimmedAwayLog struct {
	logger   watermill.LoggerAdapter
	mu       sync.Mutex
	count    map[string]int
	lastLog  time.Time
	reported bool
}

// note records n entries of stream found gone, and logs the count gathered
// since the last line at most every trimmedAwayLogInterval.
func (l *trimmedAwayLog) note(stream string, n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == nil {
		l.count = map[string]int{}
	}
	l.count[stream] += n
	if l.reported && time.Since(l.lastLog) < trimmedAwayLogInterval {
		return
	}
	for st, count := range l.count {
		fields := watermill.LogFields{"stream": st, "count": count}
		if l.reported {
			fields["since"] = l.lastLog.UTC().Format(time.RFC3339)
		}
		l.logger.Info("Entries of the consumer group were deleted from the stream before they were acked (a MAXLEN cap, XTRIM or XDEL): their messages are lost; acked them away", fields)
	}
	clear(l.count)
	l.lastLog = time.Now()
	l.reported = true
}
