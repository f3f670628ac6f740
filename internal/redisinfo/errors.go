package redisinfo

import "github.com/redis/go-redis/v9"

// The classifiers below look at error replies from Redis only, wrapped or
// not: an error of redrive's own or of the network never matches, whatever
// its text.

// IsNoGroup reports the reply to a command on a consumer group (or its
// stream) that does not exist, such as XREADGROUP or XPENDING.
func IsNoGroup(err error) bool {
	return redis.HasErrorPrefix(err, "NOGROUP")
}

// IsBusyGroup reports the reply to XGROUP CREATE for a group that exists.
func IsBusyGroup(err error) bool {
	return redis.HasErrorPrefix(err, "BUSYGROUP")
}

// IsOOM reports Redis refusing a command that may grow memory while at
// maxmemory with the noeviction policy.
func IsOOM(err error) bool {
	return redis.HasErrorPrefix(err, "OOM ")
}

// IsNoScript reports an EVALSHA of a script the node has not loaded (first
// use, restart or failover).
func IsNoScript(err error) bool {
	return redis.HasErrorPrefix(err, "NOSCRIPT")
}

// IsNoSuchKey reports the reply of commands such as XINFO on a key that does
// not exist ("ERR no such key").
func IsNoSuchKey(err error) bool {
	return redis.HasErrorPrefix(err, "no such key")
}
