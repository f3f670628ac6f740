package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/web"
)

// basicAuthEnv holds "user:password" for --basic-auth: an environment
// variable, so the password never shows in ps.
const basicAuthEnv = "REDRIVE_WEB_BASIC_AUTH"

// shutdownTimeout bounds the wait for open requests when the console stops.
const shutdownTimeout = 10 * time.Second

const webUsage = `Usage: redrive web [--listen ADDR] [--read-only] [--basic-auth] [--show-payloads]

Serves the web console: every topic with its groups, lag, retries and
poisoned messages; charts of the last hour; the poison list with filters;
requeue, purge and run-now with a dry run first. It runs until interrupted.

Flags:
  --listen ADDR     address to serve on (default 127.0.0.1:8080, this machine
                    only; give 0.0.0.0:8080 to serve others, with --basic-auth)
  --read-only       no actions: every page, no button, and any POST refused
  --basic-auth      require HTTP basic auth with the user:password in
                    $` + basicAuthEnv + ` (never on the command line)
  --show-payloads   let operators reveal message payloads (they can hold
                    personal data; hidden by default)
  --match GLOB      only topics whose name matches GLOB
  --prefix PATH     serve under PATH (such as /redrive) instead of /
  --retain AGE      the subscribers' RetainAcked, against which the topic page
                    shows what each group holds back from trimming (default 10m)

Examples:
  redrive web
  redrive web --read-only --redis redis://replica:6379
  ` + basicAuthEnv + `=ops:$(cat /run/secrets/console) redrive web --listen 0.0.0.0:8080 --basic-auth
` + globalFlags

func (a *app) runWeb(ctx context.Context, args []string) error {
	fs := a.newFlagSet("web", webUsage)
	listen := fs.String("listen", "127.0.0.1:8080", "")
	readOnly := fs.Bool("read-only", false, "")
	basicAuth := fs.Bool("basic-auth", false, "")
	showPayloads := fs.Bool("show-payloads", false, "")
	match := fs.String("match", "", "")
	prefix := fs.String("prefix", "", "")
	retain := retainValue{d: redrive.DefaultRetainAcked}
	fs.Var(&retain, "retain", "")
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if err := oneArg(fs, pos); err != nil {
		return err
	}
	*prefix = strings.TrimSuffix(*prefix, "/")
	if *prefix != "" && !strings.HasPrefix(*prefix, "/") {
		return usagef("web", "web: --prefix %q must start with /", *prefix)
	}
	var user, password string
	if *basicAuth {
		var ok bool
		user, password, ok = strings.Cut(a.getenv(basicAuthEnv), ":")
		if !ok || user == "" || password == "" {
			return usagef("web", "web: --basic-auth needs $%s set to user:password", basicAuthEnv)
		}
	}
	client, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	logger := watermill.NewStdLoggerWithOut(a.stderr, false, false)
	console, err := web.NewHandler(web.Config{
		Client: client, ReadOnly: *readOnly, ShowPayloads: *showPayloads, TopicMatch: *match,
		RetainAcked: retain.window(),
	}, logger)
	if err != nil {
		return err
	}
	defer console.(*web.Handler).Close()

	var h http.Handler = console
	if *prefix != "" {
		mux := http.NewServeMux()
		mux.Handle(*prefix+"/", http.StripPrefix(*prefix, console))
		mux.Handle("/{$}", http.RedirectHandler(*prefix+"/", http.StatusFound))
		h = mux
	}
	if *basicAuth {
		h = requireBasicAuth(h, user, password)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	if !*basicAuth && !isLoopback(ln.Addr()) {
		fmt.Fprintf(a.stderr, "redrive: warning: serving on %s without --basic-auth: anyone who reaches it can requeue and purge\n", ln.Addr())
	}
	mode := ""
	if *readOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(a.stdout, "redrive web console%s on http://%s%s/\n", mode, ln.Addr(), *prefix)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop serving: %w", err)
	}
	return nil
}

// requireBasicAuth lets through only requests with these credentials,
// compared in constant time.
func requireBasicAuth(next http.Handler, user, password string) http.Handler {
	want := sha256.Sum256([]byte(user + ":" + password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		got := sha256.Sum256([]byte(u + ":" + p))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="redrive", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
