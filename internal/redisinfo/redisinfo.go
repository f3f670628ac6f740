// Package redisinfo answers, in one place, the questions redrive asks about
// the Redis it talks to: which version the server runs (INFO), whether the
// client is a Cluster client and so whether two keys may share a script, and
// what kind of error reply a command got.
package redisinfo

import "strings"

// Field returns the value of name in the text of an INFO reply, or "" when
// the reply has no such field.
func Field(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
