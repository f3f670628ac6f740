package scripts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Script is one Lua script with its typed arguments A and reply R.
type Script[A, R any] struct {
	name   string
	script *redis.Script
	// build turns the arguments into KEYS and ARGV: the only place that
	// knows their order.
	build func(A) (keys []string, argv []interface{}, err error)
	// parse reads the reply to args; nil stands for Lua false (go-redis's
	// redis.Nil).
	parse func(args A, reply interface{}) (R, error)
}

func newScript[A, R any](name, source string, build func(A) ([]string, []interface{}, error), parse func(interface{}) (R, error)) *Script[A, R] {
	return newScriptForArgs(name, source, build, func(_ A, v interface{}) (R, error) { return parse(v) })
}

// newScriptForArgs is newScript for a script whose reply is read knowing the
// arguments (one reply per message sent, say).
func newScriptForArgs[A, R any](name, source string, build func(A) ([]string, []interface{}, error), parse func(A, interface{}) (R, error)) *Script[A, R] {
	return &Script[A, R]{name: name, script: redis.NewScript(source), build: build, parse: parse}
}

// Run runs the script with args on c (EVALSHA, then EVAL if the server does
// not have it cached) and returns its parsed reply.
func (s *Script[A, R]) Run(ctx context.Context, c redis.Scripter, args A) (R, error) {
	return s.Queue(ctx, c, args).Reply()
}

// Queue runs the script like Run but returns the command: on a pipeline it
// queues EVALSHA only (a pipeline cannot fall back to EVAL; Load the script
// when Exec reports NOSCRIPT), and its reply is read with Cmd.Reply after
// Exec. On a client it runs at once, with the fallback.
func (s *Script[A, R]) Queue(ctx context.Context, c redis.Scripter, args A) *Cmd[R] {
	keys, argv, err := s.build(args)
	if err != nil {
		return s.failed(ctx, err)
	}
	return s.cmd(s.script.Run(ctx, c, keys, argv...), args)
}

// QueueSource queues the script on pipe with its whole source (EVAL), for a
// pipeline that must not fail on a server that has not cached it.
func (s *Script[A, R]) QueueSource(ctx context.Context, pipe redis.Scripter, args A) *Cmd[R] {
	keys, argv, err := s.build(args)
	if err != nil {
		return s.failed(ctx, err)
	}
	return s.cmd(s.script.Eval(ctx, pipe, keys, argv...), args)
}

// ReplyOf reads the reply of cmd, a command Queue or QueueSource returned
// for args, where only its *redis.Cmd was kept.
func (s *Script[A, R]) ReplyOf(cmd *redis.Cmd, args A) (R, error) {
	return s.cmd(cmd, args).Reply()
}

// Load caches the script on c's server (SCRIPT LOAD).
func (s *Script[A, R]) Load(ctx context.Context, c redis.Scripter) error {
	if err := s.script.Load(ctx, c).Err(); err != nil {
		return fmt.Errorf("load script %s: %w", s.name, err)
	}
	return nil
}

func (s *Script[A, R]) cmd(cmd *redis.Cmd, args A) *Cmd[R] {
	return &Cmd[R]{Cmd: cmd, name: s.name, parse: func(v interface{}) (R, error) { return s.parse(args, v) }}
}

// failed is a command that was never sent because its arguments were bad.
func (s *Script[A, R]) failed(ctx context.Context, err error) *Cmd[R] {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(fmt.Errorf("script %s: bad arguments: %w", s.name, err))
	var zero A
	return s.cmd(cmd, zero)
}

// Cmd is a script command, sent or queued on a pipeline. It is a
// redis.Cmder, so it can be returned where a pipeline's commands are.
type Cmd[R any] struct {
	*redis.Cmd
	name  string
	parse func(interface{}) (R, error)
}

// Reply returns the parsed reply, or the command's error (unchanged when it
// came from Redis).
func (c *Cmd[R]) Reply() (R, error) {
	var zero R
	v, err := c.Cmd.Result()
	if errors.Is(err, redis.Nil) {
		v, err = nil, nil
	}
	if err != nil {
		return zero, err
	}
	r, err := c.parse(v)
	if err != nil {
		return zero, fmt.Errorf("script %s: unexpected reply: %w", c.name, err)
	}
	return r, nil
}

// flag is how every script takes a boolean in ARGV: "1" or "0".
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// millis is how every script takes a duration in ARGV: whole milliseconds.
func millis(d time.Duration) int64 { return d.Milliseconds() }

// DueScore is the sorted-set score of a message due at t in every delayed
// set: t in Unix milliseconds, rounded up. Rounded down, a message due at
// 5.7 ms would be moved once the clock reads 5.0 ms, and could be delivered
// before its due time.
func DueScore(t time.Time) int64 {
	const ms = int64(time.Millisecond)
	return (t.UnixNano() + ms - 1) / ms
}

// replyBool reads a boolean a script returns as the integer 1 or 0.
func replyBool(v interface{}) (bool, error) {
	switch v {
	case int64(1):
		return true, nil
	case int64(0):
		return false, nil
	}
	return false, fmt.Errorf("%v (%T) is not 1 or 0", v, v)
}

func replyInt(v interface{}) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
	}
	return n, nil
}

// replyStringOrNil reads a string, or Lua false (nil) as "".
func replyStringOrNil(v interface{}) (string, error) {
	if v == nil {
		return "", nil
	}
	return replyString(v)
}

func replyString(v interface{}) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%v (%T) is not a string", v, v)
	}
	return s, nil
}

// replyStrings reads an array of strings (empty for an empty array).
func replyStrings(v interface{}) ([]string, error) {
	return replyArray(v, -1, replyString)
}

// replyArrayOf returns a reader of an array (empty for an empty array)
// whose items parse reads.
func replyArrayOf[T any](parse func(interface{}) (T, error)) func(interface{}) ([]T, error) {
	return func(v interface{}) ([]T, error) { return replyArray(v, -1, parse) }
}

// replyArray reads an array of exactly n items (any length when n < 0)
// whose items parse reads.
func replyArray[T any](v interface{}, n int, parse func(interface{}) (T, error)) ([]T, error) {
	list, err := replyList(v, n)
	if err != nil {
		return nil, err
	}
	items := make([]T, len(list))
	for i, raw := range list {
		if items[i], err = parse(raw); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
	}
	return items, nil
}

// replyPart parses v, the part of a reply called name, into *dst. Parts are
// read with one replyPart each, joined by cmp.Or, which returns the first
// error.
func replyPart[T any](name string, dst *T, v interface{}, parse func(interface{}) (T, error)) error {
	x, err := parse(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*dst = x
	return nil
}

// replyList reads an array of exactly n items (any length when n < 0).
func replyList(v interface{}, n int) ([]interface{}, error) {
	list, ok := v.([]interface{})
	if !ok {
		if v == nil && n < 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("%v (%T) is not an array", v, v)
	}
	if n >= 0 && len(list) != n {
		return nil, fmt.Errorf("array of %d items, want %d: %v", len(list), n, v)
	}
	return list, nil
}

// replyFields reads a stream entry's {field, value, …} list.
func replyFields(v interface{}) (map[string]interface{}, error) {
	list, err := replyList(v, -1)
	if err != nil || len(list)%2 != 0 {
		return nil, fmt.Errorf("entry fields %v are not field/value pairs", v)
	}
	values := make(map[string]interface{}, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		k, ok := list[i].(string)
		if !ok {
			return nil, fmt.Errorf("field name %v (%T) is not a string", list[i], list[i])
		}
		values[k] = list[i+1]
	}
	return values, nil
}

// replyEntry reads a stream entry {id, {field, value, …}}.
func replyEntry(v interface{}) (redis.XMessage, error) {
	parts, err := replyList(v, 2)
	if err != nil {
		return redis.XMessage{}, fmt.Errorf("entry: %w", err)
	}
	id, err := replyString(parts[0])
	if err != nil {
		return redis.XMessage{}, fmt.Errorf("entry ID: %w", err)
	}
	values, err := replyFields(parts[1])
	if err != nil {
		return redis.XMessage{}, fmt.Errorf("entry %s: %w", id, err)
	}
	return redis.XMessage{ID: id, Values: values}, nil
}
