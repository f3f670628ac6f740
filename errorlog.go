package redrive

import (
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// errorLogInterval is how often a failure that keeps repeating is logged again.
const errorLogInterval = 30 * time.Second

// errorLog logs a loop's failures without flooding: the first failure, then
// at most one line per errorLogInterval while they go on, then one line when
// the loop recovers.
type errorLog struct {
	logger   watermill.LoggerAdapter
	msg      string
	failures int
	lastLog  time.Time
}

func newErrorLog(logger watermill.LoggerAdapter, msg string) *errorLog {
	return &errorLog{logger: logger, msg: msg}
}

func (l *errorLog) failed(err error) {
	l.failures++
	if l.failures == 1 || time.Since(l.lastLog) >= errorLogInterval {
		l.logger.Error(l.msg, err, watermill.LogFields{"consecutive_failures": l.failures})
		l.lastLog = time.Now()
	}
}

func (l *errorLog) succeeded() {
	if l.failures > 0 {
		l.logger.Info(l.msg+": recovered", watermill.LogFields{"failures": l.failures})
		l.failures = 0
	}
}

// syncErrorLog is an errorLog for many goroutines.
type syncErrorLog struct {
	mu  sync.Mutex
	log *errorLog
}

func newSyncErrorLog(logger watermill.LoggerAdapter, msg string) *syncErrorLog {
	return &syncErrorLog{log: newErrorLog(logger, msg)}
}

func (l *syncErrorLog) failed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.failed(err)
}

func (l *syncErrorLog) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log.succeeded()
}
