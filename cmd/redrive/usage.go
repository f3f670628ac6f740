package main

import (
	"sort"
	"strings"
)

// globalFlags is the part of every help text about connecting and output.
const globalFlags = `
Flags every command accepts:
  --redis ADDR   Redis to use (default: $REDIS_URL, else $REDIS_ADDR, else
                 127.0.0.1:6379):
                   host:port
                   redis://[user:password@]host:port[/db]   (rediss:// for TLS)
                   host1:port1,host2:port2,...              Redis Cluster seeds
                   redis://user:password@host1:port1,host2:port2
  --cluster      use a Redis Cluster client even with a single seed
  --json         print JSON for scripts instead of tables
  -h, --help     show help

Exit status: 0 on success, 1 when the command failed (Redis unreachable, not
found, some messages not handled), 2 on a wrong command line.
`

const topUsage = `redrive inspects and repairs redrive topics in Redis: consumer groups,
delayed retries and poisoned messages.

Usage:
  redrive [flags] <command> <subcommand> [arguments] [flags]

Commands:
  topic list [--match GLOB]               every topic with length, memory, groups,
                                          lag, pending, delayed, retries, poisoned
  topic info <topic>                      stream, groups, pending, lag, consumers,
                                          delayed and poisoned messages of a topic,
                                          and what each group holds back from trimming
  topic trim <topic> [--dry-run]          remove entries every group has finished with
  group delete <topic> <group>            delete a consumer group that stopped for good
  poison list <poison-topic>              poisoned messages, oldest first
  poison show <poison-topic> <id>         one poisoned message in full
  poison requeue <poison-topic> SELECT    send messages back to their topic and group
  poison purge <poison-topic> SELECT      delete poisoned messages for good
  delayed list <topic>                    messages waiting for their due time
  delayed run-now <topic> (--id|--all)    deliver delayed messages now
  web [--listen ADDR] [--read-only]       the web console (see "redrive web --help")

  help <command> [<subcommand>]           help for a command

A poison topic is a stream such as the retry middleware's poison topic; add
--internal to name a topic instead and use the stream where the subscriber
moves that topic's undecodable and crash-looping entries.

Examples:
  redrive topic info orders
  REDIS_URL=rediss://app:secret@redis.example:6380 redrive poison list poison
  redrive poison requeue poison --reason timeout --dry-run
  redrive delayed run-now orders --all --json
` + globalFlags

// groupUsage lists the subcommands of a command.
func groupUsage(group string) string {
	cmds := sortedCommands(group)
	var b strings.Builder
	b.WriteString("Subcommands of redrive " + group + ":\n\n")
	for _, c := range cmds {
		// The first paragraph of each subcommand's help.
		b.WriteString(strings.SplitN(c.usage, "\n\n", 3)[0] + "\n")
		b.WriteString(indent(strings.SplitN(c.usage, "\n\n", 3)[1]) + "\n\n")
	}
	b.WriteString("Run 'redrive " + group + " <subcommand> --help' for its flags and examples.\n")
	return b.String()
}

// subcommandNames lists a command's subcommands for error messages.
func subcommandNames(group string) string {
	var names []string
	for _, c := range sortedCommands(group) {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

func sortedCommands(group string) []*command {
	cmds := append([]*command(nil), commands[group]...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	return cmds
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
