package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redisinfo"
)

// Defaults for Config.
const (
	// DefaultBatchSize is how many messages a long operation handles per
	// Redis round trip.
	DefaultBatchSize = 200
	// DefaultRequeueMarkerTTL is how long the marker of a cross-slot requeue
	// on a Redis Cluster is kept (see Config.RequeueMarkerTTL).
	DefaultRequeueMarkerTTL = 24 * time.Hour
)

// Config configures an Admin.
type Config struct {
	// Client is the Redis client: *redis.Client, *redis.ClusterClient or a
	// Sentinel failover client. Required. The Admin never closes it.
	Client redis.UniversalClient

	// Unmarshaller reads stream entries, as the Subscriber's does. Default:
	// redrive.DefaultMarshallerUnmarshaller.
	Unmarshaller redrive.Unmarshaller
	// Marshaller writes requeued messages, as the Publisher's does. Default:
	// Unmarshaller when it is also a Marshaller, else
	// redrive.DefaultMarshallerUnmarshaller.
	Marshaller redrive.Marshaller

	// BatchSize is how many messages requeue, purge and run-now handle per
	// Redis round trip; the progress callback runs after each batch.
	// Default DefaultBatchSize.
	BatchSize int

	// RequeueMarkerTTL is how long, on a Redis Cluster, the marker of a
	// requeue between two slots is kept. Running an interrupted requeue again
	// within this time completes it without writing a second copy. Default
	// DefaultRequeueMarkerTTL.
	RequeueMarkerTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.Unmarshaller == nil {
		c.Unmarshaller = redrive.DefaultMarshallerUnmarshaller{}
	}
	if c.Marshaller == nil {
		if m, ok := c.Unmarshaller.(redrive.Marshaller); ok {
			c.Marshaller = m
		} else {
			c.Marshaller = redrive.DefaultMarshallerUnmarshaller{}
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.RequeueMarkerTTL == 0 {
		c.RequeueMarkerTTL = DefaultRequeueMarkerTTL
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.Client == nil:
		return errors.New("redrive/admin: Config.Client is nil")
	case c.BatchSize < 1:
		return fmt.Errorf("redrive/admin: Config.BatchSize is %d, must be at least 1", c.BatchSize)
	case c.RequeueMarkerTTL < time.Millisecond:
		return fmt.Errorf("redrive/admin: Config.RequeueMarkerTTL is %s, must be at least 1ms", c.RequeueMarkerTTL)
	}
	return nil
}

// Admin inspects and repairs redrive topics. It is safe for concurrent use,
// and safe to use while subscribers and publishers run.
type Admin struct {
	config Config
	client redis.UniversalClient
	logger watermill.LoggerAdapter

	versionOnce sync.Once
	// lagKnown is false on servers older than Redis 7, whose XINFO GROUPS
	// has no lag: go-redis then reports 0, which would read as "caught up".
	lagKnown bool
}

// NewAdmin creates an Admin. It does no I/O.
func NewAdmin(config Config, logger watermill.LoggerAdapter) (*Admin, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Admin{
		config: config,
		client: config.Client,
		logger: logger.With(watermill.LogFields{"component": "redrive_admin"}),
	}, nil
}

// sameSlot reports whether one script may use both keys.
func (a *Admin) sameSlot(k1, k2 string) bool {
	return redisinfo.SameSlot(a.client, k1, k2)
}

// serverHasLag reports whether XINFO GROUPS gives a lag (Redis 7 and
// later). A server that does not answer INFO (an embedded test server) is
// assumed to be recent.
func (a *Admin) serverHasLag(ctx context.Context) bool {
	a.versionOnce.Do(func() {
		a.lagKnown = true
		if version, err := redisinfo.ServerVersion(ctx, a.client); err == nil && !version.AtLeast(7, 0) {
			a.lagKnown = false
		}
	})
	return a.lagKnown
}

// validEntryID reports whether id has the form <ms>-<seq> of a stream entry
// ID, so a typo gives a clear error instead of a Redis syntax error.
func validEntryID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}
