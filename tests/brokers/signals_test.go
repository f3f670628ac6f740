package brokers_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/plugin"

	"github.com/redrive-go/redrive/middleware"
)

// TestComposeSignalsHandler sends SIGTERM to a router with Watermill's
// SignalsHandler while a GoChannel handler waits an in-process retry of an
// hour: the router stops, and the wait ends with the handler's error (the
// message is nacked, never acked as handled).
func TestComposeSignalsHandler(t *testing.T) {
	b := newGoChannel(t)
	cfg := b.retry
	cfg.PoisonTopic, cfg.InitialInterval, cfg.MaxInterval = "poison", time.Hour, time.Hour
	retry, err := middleware.NewRetry(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddPlugin(plugin.SignalsHandler)
	var returned atomic.Value
	waiting := make(chan struct{})
	router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			returned.Store(errBox{err})
			return out, err
		}
	}, retry.Middleware)
	router.AddConsumerHandler("waits", "orders", b.subscriber("waits"), func(*message.Message) error {
		close(waiting)
		return errScenario
	})
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	<-router.Running()
	if err := b.publisher.Publish("orders", message.NewMessage("m", nil)); err != nil {
		t.Fatal(err)
	}
	<-waiting
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the router did not stop on SIGTERM")
	}
	got, _ := returned.Load().(errBox)
	if !errors.Is(got.err, errScenario) {
		t.Errorf("the interrupted in-process retry returned %v, want the handler's error (nack)", got.err)
	}
}

type errBox struct{ err error }
