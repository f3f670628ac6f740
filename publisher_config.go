package redrive

import (
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Publisher defaults.
const (
	// DefaultMaxPipelineSize is how many messages one round trip carries at most.
	DefaultMaxPipelineSize = 1000
	// DefaultPipelines is how many round trips may be in flight at once.
	DefaultPipelines = 4
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
	// 0 means no cap.
	Maxlens map[string]int64
	// DefaultMaxlen caps the streams not in Maxlens. 0 means no cap.
	DefaultMaxlen int64

	// MaxPipelineSize is the most messages sent in one round trip. Concurrent
	// Publish calls are coalesced into pipelines of up to this many messages.
	// Default DefaultMaxPipelineSize.
	MaxPipelineSize int
	// Pipelines is how many pipelines may be in flight at once. Default
	// DefaultPipelines.
	Pipelines int
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
	return nil
}

func (c *PublisherConfig) maxlen(topic string) int64 {
	if maxlen, ok := c.Maxlens[topic]; ok {
		return maxlen
	}
	return c.DefaultMaxlen
}
