package router_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
	"github.com/redrive-go/redrive/router"
)

// TestOtherBrokerHandlerSubscribesItsRetryTopic adds a GoChannel handler
// with durable retries: the router reads the handler's retry topic by
// itself, so the retry comes back to that handler only, and another handler
// of the topic runs once.
func TestOtherBrokerHandlerSubscribesItsRetryTopic(t *testing.T) {
	t.Parallel()
	rdb := redistest.NewClient(t)
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	t.Cleanup(func() { _ = gc.Close() })
	durable, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{Client: rdb, Publisher: gc, Name: redistest.RandomTopic("durable")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = durable.Close()
		rdb.Del(context.Background(), durable.Key())
	})
	r := newRouter(t, rdb, router.Config{})

	var mu sync.Mutex
	runs := map[string]int{}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return runs[name]
	}
	retry := fastRetry(3)
	retry.Publisher, retry.PoisonTopic = gc, "poison"
	retry.Delay, retry.Durable = middleware.DelayDurable, durable
	if _, err := r.AddOtherBrokerHandler("flaky", "orders", gc, func(msg *message.Message) error {
		mu.Lock()
		runs["flaky"]++
		n := runs["flaky"]
		mu.Unlock()
		if n == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}, router.WithRetry(retry)); err != nil {
		t.Fatal(err)
	}
	inProcess := fastRetry(3)
	inProcess.Publisher, inProcess.PoisonTopic = gc, "poison"
	if _, err := r.AddOtherBrokerHandler("steady", "orders", gc, func(*message.Message) error {
		mu.Lock()
		runs["steady"]++
		mu.Unlock()
		return nil
	}, router.WithRetry(inProcess)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Router().Handlers()["flaky"+middleware.RetryHandlerSuffix]; !ok {
		t.Fatal("the router did not add flaky's retry handler")
	}
	if _, ok := r.Router().Handlers()["steady"+middleware.RetryHandlerSuffix]; ok {
		t.Fatal("the router added a retry handler for in-process retries")
	}
	run(t, r)
	if err := gc.Publish("orders", message.NewMessage("m", nil)); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, waitTimeout, func() bool { return count("flaky") == 2 }, "flaky's retry never came back")
	<-durable.Published()
	time.Sleep(100 * time.Millisecond) // anything more would come now
	if count("flaky") != 2 || count("steady") != 1 {
		t.Errorf("flaky ran %d times (want 2), steady %d (want 1)", count("flaky"), count("steady"))
	}
}

func TestOtherBrokerHandlerRefusesWhatCannotWork(t *testing.T) {
	rdb := redistest.NewClient(t)
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	r := newRouter(t, rdb, router.Config{})
	noop := func(*message.Message) error { return nil }
	withGC := fastRetry(1)
	withGC.Publisher = gc
	cases := []struct {
		name string
		opts []router.HandlerOption
		want string
	}{
		{"no retry", nil, "WithRetry"},
		{"no poison topic", []router.HandlerOption{router.WithRetry(withGC)}, "PoisonTopic"},
		{"consumer group", []router.HandlerOption{router.WithRetry(withGC), router.WithConsumerGroup("g")}, "WithConsumerGroup"},
	}
	for _, c := range cases {
		_, err := r.AddOtherBrokerHandler("h-"+strings.ReplaceAll(c.name, " ", "-"), "orders", gc, noop, c.opts...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
}
