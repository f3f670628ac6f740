package redrive

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Publisher defaults.
const (
	// DefaultMaxPipelineSize is how many messages one round trip carries at most.
	DefaultMaxPipelineSize = 1000
	// DefaultPipelines is how many round trips may be in flight at once. Two
	// measured best with 16 publishing goroutines: Redis works on one
	// pipeline while the callers answered by the other queue up for the
	// next, and each pipeline still carries several messages (see the
	// README's benchmarks).
	DefaultPipelines = 2
	// DefaultWaitTimeout is how long Publish waits for WaitReplicas replicas
	// when WaitReplicas is set and WaitTimeout is not.
	DefaultWaitTimeout = time.Second
)

// PublisherConfig configures a Publisher. Field names follow
// watermill-redisstream's PublisherConfig where the meaning is the same.
type PublisherConfig struct {
	// Client is the Redis client: *redis.Client, *redis.ClusterClient or a
	// Sentinel failover client. Required. Close never closes it.
	Client redis.UniversalClient

	// Marshaller turns messages into stream entries. Default:
	// DefaultMarshallerUnmarshaller (watermill-redisstream's wire format).
	Marshaller Marshaller

	// Maxlens caps the length of some streams (XADD MAXLEN ~ n), by topic.
	// 0 means no cap. It is kept for watermill-redisstream compatibility and
	// is not safe retention: when the stream is longer, Redis drops its
	// oldest entries whether or not every consumer group has read them, so
	// a group that lags loses messages, unread or pending, without a trace
	// (a subscriber that finds pending entries gone logs how many). Prefer
	// the Subscriber's RetainAcked, which never drops an entry a group still
	// needs.
	Maxlens map[string]int64
	// DefaultMaxlen caps the streams not in Maxlens, with the same loss as
	// Maxlens. 0 means no cap.
	DefaultMaxlen int64

	// MaxPipelineSize is the most messages sent in one round trip. Concurrent
	// Publish calls are coalesced into pipelines of up to this many messages.
	// Default DefaultMaxPipelineSize.
	MaxPipelineSize int
	// Pipelines is how many pipelines may be in flight at once. Default
	// DefaultPipelines.
	Pipelines int

	// WaitReplicas makes Publish return only once at least this many replicas
	// acknowledged its writes (Redis WAIT after them, on the connection to the
	// master that took them; on a Cluster, per master), so a failover to a
	// replica cannot lose what Publish acknowledged. When fewer acknowledge
	// within WaitTimeout, Publish returns an error wrapping ErrNotReplicated:
	// the messages are on the master and may still be delivered, so a caller
	// that publishes them again may cause duplicates (at-least-once).
	// Default 0: do not wait.
	WaitReplicas int
	// WaitTimeout bounds the wait for WaitReplicas. It must be at least 1 ms
	// and shorter than the client's ReadTimeout (WAIT is read like any other
	// reply of the pipeline). Used only with WaitReplicas. Default
	// DefaultWaitTimeout.
	WaitTimeout time.Duration
}

func (c *PublisherConfig) setDefaults() {
	if c.Marshaller == nil {
		c.Marshaller = DefaultMarshallerUnmarshaller{}
	}
	if c.MaxPipelineSize == 0 {
		c.MaxPipelineSize = DefaultMaxPipelineSize
	}
	if c.Pipelines == 0 {
		c.Pipelines = DefaultPipelines
	}
	if c.WaitReplicas > 0 && c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
}

// Validate reports the first invalid field.
func (c *PublisherConfig) Validate() error {
	if c.Client == nil {
		return errors.New("redrive: PublisherConfig.Client is nil")
	}
	for topic, maxlen := range c.Maxlens {
		if maxlen < 0 {
			return fmt.Errorf("redrive: PublisherConfig.Maxlens[%q] is %d, must be 0 (no cap) or more", topic, maxlen)
		}
	}
	if c.DefaultMaxlen < 0 {
		return fmt.Errorf("redrive: PublisherConfig.DefaultMaxlen is %d, must be 0 (no cap) or more", c.DefaultMaxlen)
	}
	if c.MaxPipelineSize < 1 {
		return fmt.Errorf("redrive: PublisherConfig.MaxPipelineSize is %d, must be at least 1", c.MaxPipelineSize)
	}
	if c.Pipelines < 1 {
		return fmt.Errorf("redrive: PublisherConfig.Pipelines is %d, must be at least 1", c.Pipelines)
	}
	if c.WaitReplicas < 0 {
		return fmt.Errorf("redrive: PublisherConfig.WaitReplicas is %d, must be 0 (do not wait) or more", c.WaitReplicas)
	}
	if c.WaitTimeout < 0 {
		return fmt.Errorf("redrive: PublisherConfig.WaitTimeout is %s, must be positive", c.WaitTimeout)
	}
	if c.WaitReplicas > 0 {
		// WAIT counts in whole milliseconds, and WAIT 0 would block forever.
		if c.WaitTimeout < time.Millisecond {
			return fmt.Errorf("redrive: PublisherConfig.WaitTimeout is %s, must be at least 1ms", c.WaitTimeout)
		}
		if rt := clientReadTimeout(c.Client); rt > 0 && c.WaitTimeout >= rt {
			return fmt.Errorf("redrive: PublisherConfig.WaitTimeout is %s, must be shorter than the client's ReadTimeout (%s)", c.WaitTimeout, rt)
		}
	}
	return nil
}

// clientReadTimeout returns the client's ReadTimeout, or 0 when unknown or
// unlimited.
func clientReadTimeout(c redis.UniversalClient) time.Duration {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ReadTimeout
	case *redis.ClusterClient:
		return c.Options().ReadTimeout
	}
	return 0
}

func (c *PublisherConfig) maxlen(topic string) int64 {
	if maxlen, ok := c.Maxlens[topic]; ok {
		return maxlen
	}
	return c.DefaultMaxlen
}
