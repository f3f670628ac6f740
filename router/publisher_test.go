package router_test

import (
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/router"
)

// The publisher the Router built reaches its handlers, and stays usable
// until Close, which closes it.
func TestPublisherIsTheOneTheRouterBuilt(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	topic := redistest.RandomTopic("router-publisher-")
	r := newRouter(t, rdb, router.Config{})
	pub, ok := r.Publisher().(*redrive.Publisher)
	if !ok || pub == nil {
		t.Fatalf("Publisher() = %T, want the *redrive.Publisher New created", r.Publisher())
	}
	got := make(chan string, 1)
	if _, err := r.AddConsumerHandler("reader", topic, func(msg *message.Message) error {
		got <- msg.UUID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	if err := r.Publisher().Publish(topic, message.NewMessage("from-outside", nil)); err != nil {
		t.Fatalf("Publish through Publisher(): %v", err)
	}
	select {
	case uuid := <-got:
		if uuid != "from-outside" {
			t.Errorf("handler got %q, want from-outside", uuid)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the message published through Publisher() never reached the handler")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(topic, message.NewMessage("after-close", nil)); !errors.Is(err, redrive.ErrPublisherClosed) {
		t.Errorf("Publish after the Router's Close = %v, want ErrPublisherClosed", err)
	}
}

// A Publisher given in Config is the one returned.
func TestPublisherIsTheOneConfigGave(t *testing.T) {
	t.Parallel()
	given := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer given.Close()
	r := newRouter(t, redistest.NewClient(t), router.Config{Publisher: given})
	if r.Publisher() != given {
		t.Errorf("Publisher() = %T %p, want Config.Publisher %p", r.Publisher(), r.Publisher(), given)
	}
}
