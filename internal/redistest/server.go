package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startTimeout bounds the wait for a new server's first PONG; a healthy
	// one answers in tens of milliseconds, even under -race load.
	startTimeout = 10 * time.Second
	// stopTimeout bounds a graceful shutdown. Redis 7 masters wait up to
	// shutdown-timeout (10 s) for lagging replicas, so allow a little more
	// before falling back to SIGKILL.
	stopTimeout = 15 * time.Second
	// portAttempts is how often StartServer picks a new free port when the
	// one FreePort found was taken before redis-server could bind it.
	portAttempts = 3
	// logTailBytes caps how much of a server log is printed on failure.
	logTailBytes = 32 << 10
	// adminTimeout bounds each command the helpers send on their own behalf.
	adminTimeout = 2 * time.Second
)

// errPortInUse marks a start that failed only because the port was taken.
var errPortInUse = errors.New("port already in use")

// ServerOptions configures StartServer.
type ServerOptions struct {
	// AppendOnly turns on the append-only file with an fsync after every
	// write (--appendonly yes --appendfsync always), so acknowledged writes
	// survive Kill and Restart. Without it the server keeps nothing on disk.
	AppendOnly bool
	// ExtraArgs are appended to the redis-server command line, for example
	// []string{"--maxmemory", "10mb"}.
	ExtraArgs []string
	// Port is the port to listen on; 0 picks a free one.
	Port int
}

// Server is a redis-server process owned by one test. It listens on
// 127.0.0.1 only, keeps its files in a temporary directory of the test and
// is killed in the test's Cleanup.
type Server struct {
	tb      testing.TB
	bin     string
	dir     string
	logPath string
	opts    ServerOptions
	port    int // fixed once StartServer returns; Restart reuses it

	// admin serves the helpers' own commands (readiness and cluster
	// checks); it never retries, so a poll of a dead node fails fast.
	admin *redis.Client

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server; a Server has a new one per start.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result, readable after done is closed
}

// exited reports whether the process has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartServer starts a redis-server owned by the test and returns once it
// answers PING. The command line is
//
//	redis-server --port P --bind 127.0.0.1 --save "" --appendonly no|yes --dir DIR [ExtraArgs...]
//
// with the process in the foreground (not daemonized) so the test holds its
// pid, and its stdout and stderr in DIR/redis-server.log, which is printed
// with tb.Log if the test fails. Cleanup kills the server.
func StartServer(tb testing.TB, opts ServerOptions) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server is not installed (apt-get install redis-server; .ci/run does it): %v", err)
	}
	opts.ExtraArgs = append([]string(nil), opts.ExtraArgs...) // the caller may reuse its slice
	dir := tb.TempDir()
	s := &Server{
		tb:      tb,
		bin:     bin,
		dir:     dir,
		logPath: filepath.Join(dir, "redis-server.log"),
		opts:    opts,
	}
	// Cleanups run last-registered first: kill, then close the admin
	// client, then print the log, and only after all that does TempDir's
	// own cleanup (registered above) remove the directory.
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redistest: redis-server %s log (%s):\n%s", s.Addr(), s.logPath, s.logTail())
		}
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		s.port = opts.Port
		if s.port == 0 {
			s.port = FreePort(tb)
		}
		err := s.start()
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			tb.Fatalf("redistest: start redis-server on %s: %v (its log follows)", s.Addr(), err)
		}
	}
	s.admin = redis.NewClient(&redis.Options{
		Addr:         s.Addr(),
		MaxRetries:   -1,
		DialTimeout:  adminTimeout,
		ReadTimeout:  adminTimeout,
		WriteTimeout: adminTimeout,
		PoolSize:     2,
	})
	tb.Cleanup(func() { _ = s.admin.Close() })
	tb.Cleanup(s.Kill)
	return s
}

// Addr returns the server's address, 127.0.0.1:Port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the port the server listens on; it stays the same across
// Restart.
func (s *Server) Port() int {
	return s.port
}

// Dir returns the server's working directory, where its AOF, nodes.conf and
// redis-server.log live; it stays the same across Restart.
func (s *Server) Dir() string {
	return s.dir
}

// Pid returns the process id of the running redis-server, or 0 when it has
// been stopped or killed or has exited on its own.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.exited() {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Kill sends SIGKILL to the server and waits until it has exited, like a
// crash: nothing is flushed beyond what the AOF fsync policy already wrote.
// It does nothing if the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

// Stop sends SIGTERM so the server shuts down cleanly, and waits until it
// has exited (falling back to SIGKILL after 15 s). It does nothing if the
// server is not running, so it is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
}

// Restart stops the server if it is running and starts it again on the same
// port with the same directory and options, so with AppendOnly its data
// survives. It returns once the server answers PING, and fails the test if
// it does not.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: restart redis-server on %s: %v (its log follows)", s.Addr(), err)
	}
}

// Client returns a client for this server, closed in tb.Cleanup. It does not
// PING, so it can be made while the server is down.
func (s *Server) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// args is the redis-server command line for this server.
func (s *Server) args() []string {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--daemonize", "no",
		"--dir", s.dir,
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	return append(args, s.opts.ExtraArgs...)
}

// start launches redis-server and waits for its first PONG. On failure the
// process is gone again. s.mu must be held.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		_ = logf.Close()
		return fmt.Errorf("seek log: %w", err)
	}
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	// The child has its own copy of the descriptor; ours is not needed.
	_ = logf.Close()
	if err != nil {
		return fmt.Errorf("exec redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	if err := waitPong(s.Addr(), p, startTimeout); err != nil {
		s.stopLocked(syscall.SIGKILL)
		if strings.Contains(s.logSince(logStart), "Address already in use") {
			return fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return err
	}
	return nil
}

// stopLocked signals the current process and waits for it to exit. s.mu must
// be held.
func (s *Server) stopLocked(sig syscall.Signal) {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	// Signal fails only if the process has already exited, which is the
	// outcome we want anyway. os.Process signals through a pidfd, so a
	// recycled pid can never hit another process.
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitPong waits until the server at addr answers PING with PONG (not, say,
// -LOADING while it replays its AOF), the process exits, or timeout passes.
func waitPong(addr string, p *process, timeout time.Duration) error {
	pid := p.cmd.Process.Pid
	err := pollErr(timeout, func() error {
		if p.exited() {
			return nil // reported below, without waiting out the timeout
		}
		return probe(addr, pid)
	})
	if p.exited() {
		return fmt.Errorf("redis-server exited before answering PING: %v", p.err)
	}
	if err != nil {
		return fmt.Errorf("no PONG within %v: %w", timeout, err)
	}
	return nil
}

// probe sends PING over a fresh connection and, when pid is not 0, checks
// that INFO server names that process: another test's redis-server may have
// taken the port FreePort chose, and its PONG must not pass for ours (ours
// will then exit with "Address already in use", and StartServer retries).
// It speaks the protocol directly so that readiness does not depend on
// go-redis pooling or retries.
func probe(addr string, pid int) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := io.WriteString(conn, "PING\r\nINFO server\r\n"); err != nil {
		return fmt.Errorf("write PING: %w", err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	if pid == 0 {
		return nil
	}
	header, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read INFO reply: %w", err)
	}
	size, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(header), "$"))
	if err != nil || !strings.HasPrefix(header, "$") {
		return fmt.Errorf("INFO answered %q", strings.TrimSpace(header))
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("read INFO reply: %w", err)
	}
	if got := parseInfo(string(body))["process_id"]; got != strconv.Itoa(pid) {
		return fmt.Errorf("answered by redis-server process %s, not ours (%d)", got, pid)
	}
	return nil
}

// logSince returns what the server wrote to its log after offset.
func (s *Server) logSince(offset int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}

// logTail returns the end of the server's log, for failure output.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = append([]byte("...\n"), b[len(b)-logTailBytes:]...)
	}
	return string(b)
}
