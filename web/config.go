package web

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/admin"
)

// Defaults for Config.
const (
	// DefaultSampleInterval is how often the handler samples every topic's
	// counters for the charts.
	DefaultSampleInterval = 5 * time.Second
	// DefaultSampleWindow is how much history the charts keep.
	DefaultSampleWindow = time.Hour
	// DefaultMaxSampledTopics bounds the topics sampled in the background;
	// a topic beyond it is sampled from the first time its page is opened.
	DefaultMaxSampledTopics = 200
	// DefaultActionTimeout bounds a dry run and a bulk action.
	DefaultActionTimeout = 10 * time.Minute
	// DefaultIdleGroupAfter is how long every consumer of a group with work
	// must be idle for the overview to flag the group as not reading.
	DefaultIdleGroupAfter = time.Minute
)

// Config configures the console handler.
type Config struct {
	// Client is the Redis client: *redis.Client, *redis.ClusterClient or a
	// Sentinel failover client. Required. The handler never closes it.
	Client redis.UniversalClient

	// Admin, when set, is the admin the console uses (to share its
	// Unmarshaller and Marshaller). Default: admin.NewAdmin over Client.
	Admin *admin.Admin

	// ReadOnly removes every action: the pages show no buttons and every
	// POST is refused with 403, whatever it carries.
	ReadOnly bool

	// ShowPayloads allows an operator to reveal a message payload on its
	// page, after an explicit click. Off by default: payloads can hold
	// personal data.
	ShowPayloads bool

	// TopicMatch is a SCAN MATCH glob that limits the topics shown, such as
	// "orders.*". Default "*".
	TopicMatch string

	// SampleInterval is how often the charts' counters are sampled.
	// Default DefaultSampleInterval.
	SampleInterval time.Duration
	// SampleWindow is how long samples are kept. Default
	// DefaultSampleWindow.
	SampleWindow time.Duration
	// MaxSampledTopics bounds the topics sampled in the background. Default
	// DefaultMaxSampledTopics.
	MaxSampledTopics int

	// ActionTimeout bounds each dry run and bulk action. Default
	// DefaultActionTimeout.
	ActionTimeout time.Duration

	// IdleGroupAfter is how long every consumer of a group with work must
	// have been idle for the overview to flag it. Default
	// DefaultIdleGroupAfter.
	IdleGroupAfter time.Duration

	// RetainAcked is the retention window the topic page judges each
	// group's hold on the stream against: set it to your subscribers'
	// SubscriberConfig.RetainAcked. 0 means redrive.DefaultRetainAcked.
	RetainAcked time.Duration

	// CSRFKey signs the CSRF tokens. Give the same key to every replica
	// behind one load balancer; default: a random key per handler.
	CSRFKey []byte
}

func (c *Config) setDefaults() {
	if c.TopicMatch == "" {
		c.TopicMatch = "*"
	}
	if c.SampleInterval == 0 {
		c.SampleInterval = DefaultSampleInterval
	}
	if c.SampleWindow == 0 {
		c.SampleWindow = DefaultSampleWindow
	}
	if c.MaxSampledTopics == 0 {
		c.MaxSampledTopics = DefaultMaxSampledTopics
	}
	if c.ActionTimeout == 0 {
		c.ActionTimeout = DefaultActionTimeout
	}
	if c.IdleGroupAfter == 0 {
		c.IdleGroupAfter = DefaultIdleGroupAfter
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive/web: Config.Client is nil")
	case c.SampleInterval < 10*time.Millisecond:
		return fmt.Errorf("redrive/web: Config.SampleInterval is %s, must be at least 10ms", c.SampleInterval)
	case c.SampleWindow < c.SampleInterval:
		return fmt.Errorf("redrive/web: Config.SampleWindow is %s, shorter than SampleInterval %s", c.SampleWindow, c.SampleInterval)
	case c.MaxSampledTopics < 0:
		return fmt.Errorf("redrive/web: Config.MaxSampledTopics is %d, must not be negative", c.MaxSampledTopics)
	case c.ActionTimeout < time.Second:
		return fmt.Errorf("redrive/web: Config.ActionTimeout is %s, must be at least 1s", c.ActionTimeout)
	case c.IdleGroupAfter < 0:
		return fmt.Errorf("redrive/web: Config.IdleGroupAfter is %s, must not be negative", c.IdleGroupAfter)
	case c.CSRFKey != nil && len(c.CSRFKey) < 16:
		return fmt.Errorf("redrive/web: Config.CSRFKey has %d bytes, must have at least 16", len(c.CSRFKey))
	}
	return nil
}
