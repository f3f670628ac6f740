// Package startstop gives background services one way to start and stop, in
// the manner of River's maintenance services: Start launches the service's
// goroutine, Stop cancels it and waits until it has returned. Both are safe to
// call more than once and from several goroutines.
package startstop

import (
	"context"
	"sync"
)

// Base is embedded by a service.
type Base struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
}

// StartInit prepares a start. It returns shouldStart false when the service
// is already running. Otherwise the service runs its loop on ctx in a
// goroutine and closes stopped when the loop returns.
func (b *Base) StartInit(ctx context.Context) (runCtx context.Context, shouldStart bool, stopped chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped != nil {
		return nil, false, nil
	}
	runCtx, b.cancel = context.WithCancel(ctx)
	b.stopped = make(chan struct{})
	return runCtx, true, b.stopped
}

// Stop cancels the service and waits for its loop to return. It does nothing
// when the service is not running.
func (b *Base) Stop() {
	b.mu.Lock()
	cancel, stopped := b.cancel, b.stopped
	b.cancel, b.stopped = nil, nil
	b.mu.Unlock()
	if stopped == nil {
		return
	}
	cancel()
	<-stopped
}
