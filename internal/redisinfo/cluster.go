package redisinfo

import (
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/hashslot"
)

// IsCluster reports whether c talks to a Redis Cluster, where the keys of one
// command or script must share a hash slot.
func IsCluster(c redis.UniversalClient) bool {
	_, ok := c.(*redis.ClusterClient)
	return ok
}

// SameSlot reports whether one command or script on c may use both keys: on a
// single server or Sentinel any two may, on a Cluster only keys of one slot.
func SameSlot(c redis.UniversalClient, key1, key2 string) bool {
	return !IsCluster(c) || hashslot.Of(key1) == hashslot.Of(key2)
}
