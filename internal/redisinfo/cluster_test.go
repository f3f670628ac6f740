package redisinfo

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestIsClusterAndSameSlot(t *testing.T) {
	// Neither client connects before its first command.
	single := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	sentinel := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { _ = single.Close(); _ = cluster.Close(); _ = sentinel.Close() })

	cases := []struct {
		name       string
		client     redis.UniversalClient
		cluster    bool
		a, b       string
		sameSlotOK bool
	}{
		{"single, other slots", single, false, "a", "b", true},
		{"sentinel, other slots", sentinel, false, "a", "b", true},
		{"cluster, other slots", cluster, true, "a", "b", false},
		{"cluster, one hash tag", cluster, true, "{t}:a", "{t}:b", true},
		{"cluster, one key", cluster, true, "a", "a", true},
	}
	for _, c := range cases {
		if got := IsCluster(c.client); got != c.cluster {
			t.Errorf("%s: IsCluster = %v, want %v", c.name, got, c.cluster)
		}
		if got := SameSlot(c.client, c.a, c.b); got != c.sameSlotOK {
			t.Errorf("%s: SameSlot(%q, %q) = %v, want %v", c.name, c.a, c.b, got, c.sameSlotOK)
		}
	}
}
