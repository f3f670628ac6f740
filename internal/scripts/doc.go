// Package scripts holds every Lua script redrive runs, one file per script,
// each with a header naming its KEYS, its ARGV and its reply, and beside it
// a typed Go wrapper: an Args struct (real booleans, durations, times), the
// one function that turns it into KEYS and ARGV, and a parsed reply.
//
// The contract, the same for every script:
//
//   - Every key a script touches is in KEYS, so scripts run on Redis Cluster
//     (the callers put all of one script's keys in one slot).
//   - A boolean goes to Lua as "1" or "0" (flag) and comes back as the
//     integer 1 or 0; both conversions live in this package only.
//   - Names that Go and Lua share, such as CorruptDelayedField, are defined
//     once in Go and passed in ARGV.
//   - Run uses EVALSHA and falls back to EVAL (redis.Script.Run). Errors from
//     Redis are returned unchanged, so callers can classify them (NOSCRIPT,
//     NOGROUP) and add their own context; a reply of an unexpected shape is
//     an error that names the script.
package scripts
