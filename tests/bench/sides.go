package main

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
)

// Side names, as -sides takes them and the report shows them.
const (
	sideAnchor  = "redisstream"
	sideRedrive = "redrive"
	// sideAutopipeline is no Pub/Sub but the bare auto-pipelining client of
	// autopipeline.go, a yardstick for the publish workloads only.
	sideAutopipeline = "autopipeline"
)

// side is one of the two Pub/Subs under test, with its own Redis client.
// Both clients have the same options (go-redis defaults), and each counts
// the commands it sends.
type side struct {
	name    string
	raw     *redis.Client
	client  redis.UniversalClient
	counter *cmdCounter
	logger  watermill.LoggerAdapter

	newPublisher func() (message.Publisher, error)
	// newSubscriber is nil for a side that only publishes.
	newSubscriber func(group string) (message.Subscriber, error)
}

// noCloseClient keeps watermill-redisstream from closing the shared client:
// its Publisher.Close and Subscriber.Close close the client they were given
// (a known flaw, see ANCHORS.md), which would break the next workload.
type noCloseClient struct{ *redis.Client }

func (noCloseClient) Close() error { return nil }

func newSide(name, addr string, logger watermill.LoggerAdapter) *side {
	raw := redis.NewClient(&redis.Options{Addr: addr})
	counter := newCmdCounter()
	raw.AddHook(counter)
	s := &side{name: name, raw: raw, counter: counter, logger: logger}
	switch name {
	case sideAutopipeline:
		s.client = raw
		s.newPublisher = func() (message.Publisher, error) {
			return newAutopipelinePublisher(addr)
		}
	case sideAnchor:
		s.client = noCloseClient{raw}
		s.newPublisher = func() (message.Publisher, error) {
			return redisstream.NewPublisher(redisstream.PublisherConfig{Client: s.client}, logger)
		}
		s.newSubscriber = func(group string) (message.Subscriber, error) {
			return redisstream.NewSubscriber(redisstream.SubscriberConfig{
				Client:        s.client,
				ConsumerGroup: group,
				// Without it the first read blocks forever on an empty stream
				// and holds a connection past Close; it changes no throughput.
				DisableIndefiniteInitialBlock: true,
			}, logger)
		}
	default:
		s.client = raw
		s.newPublisher = func() (message.Publisher, error) {
			return s.newRedrivePublisher()
		}
		s.newSubscriber = func(group string) (message.Subscriber, error) {
			return s.newRedriveSubscriber(group)
		}
	}
	return s
}

func (s *side) newRedrivePublisher() (*redrive.Publisher, error) {
	return redrive.NewPublisher(redrive.PublisherConfig{Client: s.client}, s.logger)
}

func (s *side) newRedriveSubscriber(group string) (*redrive.Subscriber, error) {
	return redrive.NewSubscriber(redrive.SubscriberConfig{Client: s.client, ConsumerGroup: group}, s.logger)
}
