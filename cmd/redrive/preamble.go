package main

import (
	"context"
	"flag"
	"strings"

	"github.com/redrive-go/redrive/admin"
)

// invocation is a command line parsed and checked, with a connection to
// Redis: what every command has before it does its work.
type invocation struct {
	// args are the positional arguments, one for each name the command takes.
	args []string
	adm  *admin.Admin
	// close closes the connection to Redis.
	close func()
}

// start is the preamble every command shares. It parses args with fs (which
// holds the command's own flags besides the global ones), checks that
// exactly the positional arguments names were given, runs check (the
// command's own checks of its flags; nil when it has none) and connects to
// Redis. Nothing connects before the command line is found good. The caller
// defers close.
func (a *app) start(ctx context.Context, fs *flag.FlagSet, args []string, check func() error, names ...string) (*invocation, error) {
	pos, err := a.parseFlags(fs, args, false)
	if err != nil {
		return nil, err
	}
	if err := oneArg(fs, pos, names...); err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, err
		}
	}
	adm, closeClient, err := a.admin(ctx)
	if err != nil {
		return nil, err
	}
	return &invocation{args: pos, adm: adm, close: closeClient}, nil
}

// oneArg checks that exactly the named positional arguments were given.
func oneArg(fs *flag.FlagSet, pos []string, names ...string) error {
	name := commandName(fs)
	if len(pos) < len(names) {
		return usagef(name, "%s: missing <%s>", name, names[len(pos)])
	}
	if len(pos) > len(names) {
		return usagef(name, "%s: unexpected argument %q", name, pos[len(names)])
	}
	for i, p := range pos {
		if p == "" {
			return usagef(name, "%s: <%s> is empty", name, names[i])
		}
	}
	return nil
}

// checkLimit refuses a --limit below 1.
func checkLimit(fs *flag.FlagSet, limit int) error {
	if limit < 1 {
		name := commandName(fs)
		return usagef(name, "--limit must be at least 1, got %d", limit)
	}
	return nil
}

// admin connects to Redis and returns an Admin and a closer.
func (a *app) admin(ctx context.Context) (*admin.Admin, func(), error) {
	client, err := a.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	adm, err := admin.NewAdmin(admin.Config{Client: client}, nil)
	if err != nil {
		_ = client.Close()
		return nil, nil, err
	}
	return adm, func() { _ = client.Close() }, nil
}

// commandName is the command a flag set belongs to, as usage errors name
// it: "poison list".
func commandName(fs *flag.FlagSet) string {
	return strings.TrimPrefix(fs.Name(), "redrive ")
}
