// Command redrive inspects and repairs redrive topics in Redis: topics (list,
// info, trim), consumer groups (delete), poisoned messages (list, show,
// requeue, purge), delayed messages (list, run now), and the web console
// (redrive web). Run "redrive --help" for the commands and examples.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK = 0
	// exitFailed: the command ran and failed (Redis unreachable, message not
	// found, some messages could not be handled).
	exitFailed = 1
	// exitUsage: the command line is wrong.
	exitUsage = 2
)

func main() {
	// go-redis logs every failed dial; the command reports the failure once,
	// in its own words.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &app{
		stdin:        os.Stdin,
		stdout:       os.Stdout,
		stderr:       os.Stderr,
		getenv:       os.Getenv,
		stderrIsTerm: term.IsTerminal(int(os.Stderr.Fd())),
	}
	os.Exit(app.run(ctx, os.Args[1:]))
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

// Printf implements go-redis's logger by dropping the line.
func (quietLogger) Printf(context.Context, string, ...interface{}) {}

// app is one run of the CLI, with its outputs and environment, so the same
// code serves main and the tests.
type app struct {
	// stdin answers confirmation questions.
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stderrIsTerm enables the progress bar: only people watching a terminal
	// want it, and it would litter a log or a pipe.
	stderrIsTerm bool

	// Flags every command accepts.
	redisSpec string
	cluster   bool
	json      bool

	// usages holds the help text of each flag set.
	usages map[*flag.FlagSet]string
}

// usageError is a mistake on the command line: the message is printed with
// a pointer to --help, and the exit code is exitUsage.
type usageError struct {
	msg     string
	command string
}

// Error returns the message.
func (e *usageError) Error() string { return e.msg }

func usagef(command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), command: command}
}

// errHelp means help was printed: exit 0.
var errHelp = errors.New("help printed")

// errFailed means the command already reported a failure in its output.
var errFailed = errors.New("failed")

func (a *app) run(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "redrive: %s\n", ue.msg)
		help := "redrive --help"
		if ue.command != "" {
			help = "redrive " + ue.command + " --help"
		}
		fmt.Fprintf(a.stderr, "Run '%s' for usage.\n", help)
		return exitUsage
	case errors.Is(err, errFailed):
		return exitFailed
	default:
		fmt.Fprintf(a.stderr, "redrive: %s\n", withoutPrefix(err))
		return exitFailed
	}
}

// command is one leaf command, such as "poison list".
type command struct {
	name string
	// usage is its --help text, with examples.
	usage string
	// run declares the command's own flags on fs (which already has the
	// global ones), calls a.start (parse, check, connect) and does the work.
	run func(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error
}

// commands holds the leaf commands by their first word ("poison").
var commands = map[string][]*command{}

// register adds a leaf command under group; the init of each command
// group's file calls it.
func register(group string, c *command) {
	commands[group] = append(commands[group], c)
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	// Global flags may come before the command.
	top := a.newFlagSet("", topUsage)
	rest, err := a.parseFlags(top, args, true)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(a.stderr, topUsage)
		return usagef("", "no command given")
	}
	group := rest[0]
	if group == "help" {
		return a.help(rest[1:])
	}
	if group == "web" {
		return a.runWeb(ctx, rest[1:])
	}
	cmds, ok := commands[group]
	if !ok {
		return usagef("", "unknown command %q", group)
	}
	if len(rest) < 2 || strings.HasPrefix(rest[1], "-") {
		if len(rest) >= 2 && (rest[1] == "-h" || rest[1] == "--help" || rest[1] == "-help") {
			fmt.Fprint(a.stdout, groupUsage(group))
			return errHelp
		}
		return usagef(group, "%s: no subcommand given (%s)", group, subcommandNames(group))
	}
	for _, c := range cmds {
		if c.name == rest[1] {
			full := group + " " + c.name
			fs := a.newFlagSet(full, c.usage)
			return c.run(ctx, a, fs, rest[2:])
		}
	}
	return usagef(group, "unknown command %q (%s has: %s)", group+" "+rest[1], group, subcommandNames(group))
}

func (a *app) help(topic []string) error {
	switch len(topic) {
	case 0:
		fmt.Fprint(a.stdout, topUsage)
		return errHelp
	case 1:
		if topic[0] == "web" {
			fmt.Fprint(a.stdout, webUsage)
			return errHelp
		}
		if _, ok := commands[topic[0]]; ok {
			fmt.Fprint(a.stdout, groupUsage(topic[0]))
			return errHelp
		}
	default:
		for _, c := range commands[topic[0]] {
			if c.name == topic[1] {
				fmt.Fprint(a.stdout, c.usage)
				return errHelp
			}
		}
	}
	return usagef("", "no help for %q", strings.Join(topic, " "))
}

// newFlagSet returns a flag set with the flags every command accepts.
func (a *app) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("redrive "+name, flag.ContinueOnError)
	// The flag package prints usage on every error; run reports errors in
	// one line instead, and parseFlags prints usage when help is asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if a.usages == nil {
		a.usages = map[*flag.FlagSet]string{}
	}
	a.usages[fs] = usage
	fs.StringVar(&a.redisSpec, "redis", a.redisSpec, "")
	fs.BoolVar(&a.cluster, "cluster", a.cluster, "")
	fs.BoolVar(&a.json, "json", a.json, "")
	return fs
}

// parseFlags parses flags wherever they stand among the arguments (the flag
// package alone stops at the first argument that is not a flag) and returns
// the others. With stopAtArg it stops at the first non-flag argument, for
// the global flags before a command.
func (a *app) parseFlags(fs *flag.FlagSet, args []string, stopAtArg bool) ([]string, error) {
	var positional []string
	name := commandName(fs)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(a.stdout, a.usages[fs])
				return nil, errHelp
			}
			return nil, usagef(name, "%s", flagError(err))
		}
		consumed := len(args) - fs.NArg()
		rest := fs.Args()
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 || stopAtArg {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
