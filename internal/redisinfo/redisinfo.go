// Package redisinfo reads fields of Redis's INFO reply, for the subscriber's
// version check, the admin tools and the benchmark alike.
package redisinfo

import (
	"strconv"
	"strings"
)

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

// Version parses a redis_version value such as "7.0.15" into its major and
// minor numbers; ok is false when it does not start with two numbers.
func Version(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}
