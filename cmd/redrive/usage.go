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

const selectorHelp = `
Choosing messages (at least one; filters combine, all must match):
  --id ID           a poison entry ID, as "poison list" shows it (repeat, or
                    separate with commas)
  --all             every message (still narrowed by the filters)
  --reason TEXT     messages whose reason contains TEXT, in any case
  --topic TOPIC     messages poisoned from TOPIC
  --older-than AGE  messages poisoned at least AGE ago: 90s, 30m, 12h, 7d
`

const topicInfoUsage = `Usage: redrive topic info <topic> [--poison-topic P]...

Shows what a topic holds: stream length; for each consumer group its pending
entries, lag, oldest pending entry, consumers and private retries (waiting,
pending, delayed, next due); the topic's delayed messages and the next due
time; the entries in the topic's internal poison stream. HOLDS BACK is the
number of entries a group still needs (pending or unread) while the stream
keeps entries older than the retention window for it, and since when: such a
group stopped reading or is far behind (see "redrive group delete").

Flags:
  --poison-topic P  also count the messages poisoned from this topic in poison
                    topic P (reads P whole; repeat for several)
  --retain AGE      the retention window the groups are judged against
                    (default 10m, the subscribers' default RetainAcked)

Examples:
  redrive topic info orders
  redrive topic info orders --poison-topic poison
  redrive topic info orders --json | jq '.groups[] | {name, lag, pending}'
` + globalFlags

const poisonListUsage = `Usage: redrive poison list <poison-topic> [filters] [--limit N] [--after ID]

Lists poisoned messages, oldest first: ID, when poisoned, original topic,
handler or group, attempts, first and last failure, reason and last error.
Payloads are never listed (they can hold personal data): see "poison show".

Flags:
  --internal        the argument is a topic: use its internal poison stream
  --reason TEXT     only messages whose reason contains TEXT, in any case
  --topic TOPIC     only messages poisoned from TOPIC
  --older-than AGE  only messages poisoned at least AGE ago: 90s, 30m, 12h, 7d
  --limit N         at most N messages (default 100)
  --after ID        continue after this entry ID (the previous page's last)

Examples:
  redrive poison list poison
  redrive poison list poison --topic orders --older-than 1h
  redrive poison list orders --internal --json
` + globalFlags

const poisonShowUsage = `Usage: redrive poison show <poison-topic> <id> [--payload]

Shows one poisoned message in full: reason, original topic, handler, group,
attempts, failures, last error, retry history and all metadata. The payload
only with --payload: payloads can hold personal data.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --payload    include the payload (as text, or hex when it is binary)

Examples:
  redrive poison show poison 1717000000000-0
  redrive poison show poison 1717000000000-0 --payload
  redrive poison show orders 1717000000000-0 --internal --json
` + globalFlags

const poisonRequeueUsage = `Usage: redrive poison requeue <poison-topic> SELECT [--dry-run] [--group G | --to-stream]

Sends poisoned messages back to their original topic. When the consumer group
that failed on a message is known, it goes to that group's private retry
stream, so only that group sees it again; otherwise to the topic's stream.
The retry count is reset (the retry history is kept) and the requeue is
recorded in the metadata. Each message moves atomically: it is never in both
places and never in neither (on a Redis Cluster, see the admin package docs).
Only messages present when the command starts are considered.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --dry-run    show what would be requeued, and where, without changing anything
  --group G    send every selected message to group G's retry stream
  --to-stream  send every selected message to its topic's stream (all groups)
` + selectorHelp + `
Examples:
  redrive poison requeue poison --id 1717000000000-0
  redrive poison requeue poison --reason "connection refused" --dry-run
  redrive poison requeue poison --topic orders --older-than 10m
  redrive poison requeue poison --all
` + globalFlags

const poisonPurgeUsage = `Usage: redrive poison purge <poison-topic> SELECT [--dry-run]

Deletes poisoned messages for good. Entries that carry no poison metadata
(ordinary messages: the argument is probably a live topic, not a poison
topic) are skipped unless chosen by --id or --force is given.

Flags:
  --internal   the argument is a topic: use its internal poison stream
  --dry-run    show what would be deleted without deleting it
  --force      also delete selected entries that carry no poison metadata
` + selectorHelp + `
Examples:
  redrive poison purge poison --id 1717000000000-0
  redrive poison purge poison --older-than 30d --dry-run
  redrive poison purge poison --reason "permanent error" --topic orders
` + globalFlags

const delayedListUsage = `Usage: redrive delayed list <topic> [--group G] [--limit N]

Lists messages waiting for their due time, soonest first: the topic's delayed
messages and each consumer group's delayed retries, with ID, due time, UUID,
attempts and last error.

Flags:
  --group G   only group G's delayed retries
  --limit N   at most N messages per set (default 100)

Examples:
  redrive delayed list orders
  redrive delayed list orders --group billing --json
` + globalFlags

const delayedRunNowUsage = `Usage: redrive delayed run-now <topic> (--id ID | --all) [--group G]

Delivers delayed messages now instead of at their due time: each moves
atomically from its delayed set into its stream (a group's retries into that
group's retry stream), whether or not a subscriber is running.

Flags:
  --id ID     a delayed message ID, as "delayed list" shows it (repeat, or
              separate with commas)
  --all       every message waiting when the command starts
  --group G   only group G's delayed retries (default: the topic's delayed
              messages and every group's retries)

Examples:
  redrive delayed run-now orders --id 01HZX3J5Q8K2M4N6P8R0S2T4V6
  redrive delayed run-now orders --all --group billing
` + globalFlags
