package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/entryfields"
)

// autopipelinePublisher is a yardstick, not a Pub/Sub: automatic pipelining
// as rueidis does it (and go-redis's experimental AutoPipeliner tries to),
// built bare, to see whether it would publish faster than redrive's
// coalescing of concurrent calls. It writes the same entries as both sides
// (DefaultMarshallerUnmarshaller, fields sorted) over one connection of its
// own, without go-redis: a writer goroutine sends whatever callers queued
// while its last write was in the kernel, and a reader goroutine answers the
// callers in order, so requests never wait for earlier replies. It has no
// hooks, retries, reconnects, AUTH or TLS.
type autopipelinePublisher struct {
	conn     net.Conn
	kick     chan struct{}
	inflight chan []*autopipelineCall // calls written, in order, awaiting replies
	done     chan struct{}            // closed when the reader has stopped

	mu     sync.Mutex
	buf    []byte
	queued []*autopipelineCall
	closed error // set by Close, or when the connection broke

	closeOnce sync.Once
}

// autopipelineCall is one Publish call: its replies, and its answer.
type autopipelineCall struct {
	replies int
	err     error
	answer  chan error
}

var errAutopipelineClosed = errors.New("autopipeline publisher closed")

func newAutopipelinePublisher(addr string) (*autopipelinePublisher, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("autopipeline publisher: dial %s: %w", addr, err)
	}
	p := &autopipelinePublisher{
		conn:     conn,
		kick:     make(chan struct{}, 1),
		inflight: make(chan []*autopipelineCall, 1024),
		done:     make(chan struct{}),
	}
	go p.write()
	go p.read()
	return p, nil
}

func (p *autopipelinePublisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	var m redrive.DefaultMarshallerUnmarshaller
	var cmds []byte
	for _, msg := range msgs {
		fields, err := m.Marshal(topic, msg)
		if err != nil {
			return err
		}
		cmds = appendRESPCommand(cmds, entryfields.AppendPairs([]interface{}{"XADD", topic, "*"}, fields))
	}
	call := &autopipelineCall{replies: len(msgs), answer: make(chan error, 1)}
	p.mu.Lock()
	if p.closed != nil {
		err := p.closed
		p.mu.Unlock()
		return err
	}
	p.buf = append(p.buf, cmds...)
	p.queued = append(p.queued, call)
	// Kicked under mu, so Close cannot close kick in between.
	select {
	case p.kick <- struct{}{}:
	default: // the writer is already due to look
	}
	p.mu.Unlock()
	return <-call.answer
}

// write sends everything queued, as often as there is something.
func (p *autopipelinePublisher) write() {
	defer close(p.inflight)
	var out []byte
	for range p.kick {
		for {
			p.mu.Lock()
			calls := p.queued
			out, p.buf = p.buf, out[:0]
			p.queued = nil
			p.mu.Unlock()
			if len(calls) == 0 {
				break
			}
			p.inflight <- calls
			if _, err := p.conn.Write(out); err != nil {
				// The reader fails the calls written; these fail the rest.
				p.stop(fmt.Errorf("autopipeline publisher: write: %w", err))
				return
			}
		}
	}
}

// read answers written calls in order, and fails them all once the
// connection breaks.
func (p *autopipelinePublisher) read() {
	defer close(p.done)
	rd := bufio.NewReaderSize(p.conn, 64<<10)
	var readErr error
	for calls := range p.inflight {
		for _, call := range calls {
			for range call.replies {
				if readErr == nil {
					var replyErr error
					replyErr, readErr = readRESPReply(rd)
					if call.err == nil {
						call.err = replyErr
					}
				}
			}
			if readErr != nil {
				call.err = readErr
			}
			call.answer <- call.err
		}
	}
}

// Close fails calls in flight and stops both goroutines. Idempotent.
func (p *autopipelinePublisher) Close() error {
	p.stop(errAutopipelineClosed)
	var err error
	p.closeOnce.Do(func() {
		close(p.kick)
		err = p.conn.Close()
		<-p.done
	})
	return err
}

// stop refuses new calls with reason and fails those not yet written.
func (p *autopipelinePublisher) stop(reason error) {
	p.mu.Lock()
	if p.closed == nil {
		p.closed = reason
	}
	queued := p.queued
	p.queued = nil
	p.mu.Unlock()
	for _, call := range queued {
		call.answer <- reason
	}
}

// appendRESPCommand appends args as a RESP array of bulk strings.
func appendRESPCommand(b []byte, args []interface{}) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		var s []byte
		switch a := a.(type) {
		case string:
			s = []byte(a)
		case []byte:
			s = a
		default:
			s = fmt.Append(nil, a)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, '\r', '\n')
		b = append(b, s...)
		b = append(b, '\r', '\n')
	}
	return b
}

// readRESPReply reads one XADD reply: a bulk string (the entry ID) or an
// error reply. replyErr is Redis's error, readErr a broken connection or an
// unexpected reply.
func readRESPReply(rd *bufio.Reader) (replyErr, readErr error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, fmt.Errorf("short reply %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '$':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("unexpected reply %q", line)
		}
		_, err = rd.Discard(n + 2)
		return nil, err
	case '-':
		return errors.New(string(body)), nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
