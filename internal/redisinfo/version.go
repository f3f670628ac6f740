package redisinfo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Version is a Redis server version.
type Version struct {
	Major, Minor int
	// Text is the redis_version field as the server wrote it, such as "7.0.15".
	Text string
}

// ParseVersion parses a redis_version value such as "7.0.15"; ok is false
// when it does not start with two numbers.
func ParseVersion(text string) (v Version, ok bool) {
	parts := strings.SplitN(text, ".", 3)
	if len(parts) < 2 {
		return Version{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Version{}, false
	}
	return Version{Major: major, Minor: minor, Text: text}, true
}

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

// String returns the version as the server wrote it.
func (v Version) String() string {
	return v.Text
}

// ServerVersion asks the server behind c for its version (INFO server). On a
// cluster the node that answers is any one of them.
func ServerVersion(ctx context.Context, c redis.Cmdable) (Version, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return Version{}, fmt.Errorf("read the Redis server version: %w", err)
	}
	text := Field(info, "redis_version")
	v, ok := ParseVersion(text)
	if !ok {
		return Version{}, fmt.Errorf("read the Redis server version: redis_version %q is not a version", text)
	}
	return v, nil
}
