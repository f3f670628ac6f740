package redistest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// proxyDialTimeout bounds the proxy's dial to its target, so a dead target
// costs a client one failed connection, not a hang.
const proxyDialTimeout = 2 * time.Second

// Proxy is a TCP proxy on a free 127.0.0.1 port that forwards every
// connection to a target address, for tests of how clients survive network
// faults: CutAll drops the live connections and SetPaused turns new ones
// away. It is closed in the test's Cleanup.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // every goroutine the proxy runs

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // both ends of every forwarded connection
	paused bool
	closed bool
}

// StartProxy starts a proxy forwarding to target (host:port) and returns
// once it accepts connections at Addr.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy to %s: listen: %v", target, err)
	}
	p := &Proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.acceptLoop)
	tb.Cleanup(p.Close)
	return p
}

// Addr returns the address clients should dial instead of the target.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// CutAll closes every connection currently forwarded, on both the client
// and the target side, as a network failure would. The proxy keeps
// accepting, so clients that reconnect get through again.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		// Each connection's goroutine removes it from the map when its
		// copies end, which this close makes them do.
		_ = c.Close()
	}
}

// SetPaused sets whether new connections are turned away: while paused the
// proxy resets each one as soon as it is accepted. Connections already
// forwarded are left alone; call CutAll as well for a full outage.
func (p *Proxy) SetPaused(paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = paused
}

// Close stops accepting, closes every forwarded connection and returns once
// all of the proxy's goroutines have ended. Calling it again does nothing.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

// acceptLoop hands each accepted connection to its own goroutine until the
// listener is closed.
func (p *Proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: back off rather
			// than spin, and keep serving once it passes.
			time.Sleep(pollInterval)
			continue
		}
		// Safe despite Close's concurrent Wait: this goroutine is itself
		// counted, so the counter is above zero here.
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward connects client to the target and copies bytes both ways until
// either side closes or the connection is cut.
func (p *Proxy) forward(client net.Conn) {
	if p.refusing() {
		reset(client)
		return
	}
	upstream, err := net.DialTimeout("tcp", p.target, proxyDialTimeout)
	if err != nil {
		reset(client)
		return
	}
	// Pause or Close may have come while dialing; track decides under the
	// lock, so CutAll can never miss a connection.
	if !p.track(client, upstream) {
		_ = upstream.Close()
		reset(client)
		return
	}
	defer p.untrack(client, upstream)

	// When one direction ends, close both connections so the other
	// direction's copy ends too instead of waiting for the far side.
	closeBoth := func() {
		_ = client.Close()
		_ = upstream.Close()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(upstream, client)
		closeBoth()
	})
	_, _ = io.Copy(client, upstream)
	closeBoth()
	wg.Wait()
}

// refusing reports whether new connections are turned away.
func (p *Proxy) refusing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused || p.closed
}

// track records both ends of a forwarded connection, unless the proxy is
// refusing connections, in which case it reports false.
func (p *Proxy) track(client, upstream net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused || p.closed {
		return false
	}
	p.conns[client] = struct{}{}
	p.conns[upstream] = struct{}{}
	return true
}

// untrack forgets a connection whose copies have ended.
func (p *Proxy) untrack(client, upstream net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, client)
	delete(p.conns, upstream)
}

// reset closes c with an RST rather than a FIN, so a client being turned
// away fails at once with "connection reset" instead of reading an EOF
// that looks like an orderly shutdown.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
