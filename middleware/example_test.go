package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/middleware"
)

// A handler fails twice, then succeeds. The retries wait in Redis, so the
// handler never sleeps and other messages keep flowing.
func ExampleNewRetry() {
	rdb := exampleRedis()
	defer rdb.Close()
	logger := watermill.NopLogger{}
	topic := "example-retry-" + watermill.NewShortUUID()

	pub, _ := redrive.NewPublisher(redrive.PublisherConfig{Client: rdb}, logger)
	sub, _ := redrive.NewSubscriber(redrive.SubscriberConfig{Client: rdb, ConsumerGroup: "billing"}, logger)
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher:       pub,
		PoisonTopic:     topic + "-poison",
		MaxRetries:      5,
		InitialInterval: 50 * time.Millisecond,
		MaxInterval:     time.Second,
		Multiplier:      2,
	}, logger)
	if err != nil {
		panic(err)
	}

	router, _ := message.NewRouter(message.RouterConfig{}, logger)
	// Retry first, so it sees the errors of panics that Recoverer catches.
	router.AddMiddleware(retry.Middleware, wmiddleware.Recoverer)
	done := make(chan struct{})
	router.AddConsumerHandler("billing", topic, sub, func(msg *message.Message) error {
		st, _ := middleware.ReadRetryState(msg.Metadata)
		if st.Attempts < 2 {
			fmt.Printf("attempt %d fails\n", st.Attempts+1)
			return errors.New("payment provider unavailable")
		}
		fmt.Printf("attempt %d succeeds after %d retries (last error: %s)\n", st.Attempts+1, st.Attempts, st.LastError)
		close(done)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = router.Run(ctx) }()
	<-router.Running()

	_ = pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{"invoice":42}`)))
	<-done
	_ = router.Close()
	rdb.Del(context.Background(), topic, redrive.KeysFor(topic).GroupRetry("billing"))

	// Output:
	// attempt 1 fails
	// attempt 2 fails
	// attempt 3 succeeds after 2 retries (last error: payment provider unavailable)
}

// Mark errors that no retry can fix: the message goes to the poison topic at
// once.
func ExamplePermanent() {
	err := middleware.Permanent(errors.New("invoice has no customer"))
	fmt.Println(middleware.IsPermanent(err), err)
	// Output: true permanent: invoice has no customer
}
