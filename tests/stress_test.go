package tests

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// TestPubSubStressTest runs Watermill's stress suite (the universal suite ten
// times at once) with the features of the consumer-group variant of
// TestPubSub, on a redis-server of its own: once with the subscriber settings
// watermill-redisstream's own tests use, once with redrive's defaults.
// Nothing else is lowered.
func TestPubSubStressTest(t *testing.T) {
	features := tests.Features{
		ConsumerGroups:                   true,
		ExactlyOnceDelivery:              false,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: false,
	}
	variants := []struct {
		name   string
		config func(c redrive.SubscriberConfig) redrive.SubscriberConfig
	}{
		{"RedisstreamSettings", func(c redrive.SubscriberConfig) redrive.SubscriberConfig {
			c.BlockTime = 10 * time.Millisecond
			c.ClaimInterval = 3 * time.Second
			c.MaxIdleTime = 5 * time.Second
			return c
		}},
		{"Defaults", func(c redrive.SubscriberConfig) redrive.SubscriberConfig { return c }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			addr := redistest.StartServer(t, redistest.ServerOptions{}).Addr()
			config := func(t *testing.T, group string) func(redrive.SubscriberConfig) redrive.SubscriberConfig {
				return func(c redrive.SubscriberConfig) redrive.SubscriberConfig {
					return v.config(redrive.SubscriberConfig{Client: c.Client, ConsumerGroup: group})
				}
			}
			tests.TestPubSubStressTest(t, features,
				func(t *testing.T) (message.Publisher, message.Subscriber) {
					return suitePubSub(t, addr, config(t, groupPerTest(t)))
				},
				func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
					return suitePubSub(t, addr, config(t, group))
				},
			)
		})
	}
}
