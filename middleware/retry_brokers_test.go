package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// captured returns the log entries of logger at level whose message is msg.
func captured(logger *watermill.CaptureLoggerAdapter, level watermill.LogLevel, msg string) []watermill.CapturedMessage {
	var out []watermill.CapturedMessage
	for _, m := range logger.Captured()[level] {
		if m.Msg == msg {
			out = append(out, m)
		}
	}
	return out
}

func TestRetryLogsEachFailedAttempt(t *testing.T) {
	t.Parallel()
	for _, level := range []watermill.LogLevel{0, watermill.DebugLogLevel} {
		h := newHarness(t)
		logger := watermill.NewCaptureLogger()
		h.logger = logger
		rec := newRecorder()
		h.addHandler("logged", middleware.RetryConfig{InitialInterval: 10 * time.Millisecond, FailureLogLevel: level},
			func(msg *message.Message) error {
				if rec.record(msg) == 1 {
					return errors.New("card declined")
				}
				return nil
			})
		h.run()
		ids := h.publish("secret-payload")
		waitFor(t, 20*time.Second, func() bool { return len(rec.of(ids[0])) == 2 }, "message not retried")

		want := level
		if want == 0 {
			want = watermill.InfoLogLevel
		}
		entries := captured(logger, want, "Handler failed")
		if len(entries) != 1 {
			t.Fatalf("level %d: %d %q entries at level %d, want 1", level, len(entries), "Handler failed", want)
		}
		f := entries[0].Fields
		checks := map[string]any{"handler": "logged", "topic": h.topic, "message_uuid": ids[0], "attempt": 1, "next_delay": "10ms", "err": "card declined"}
		for k, v := range checks {
			if f[k] != v {
				t.Errorf("level %d: field %s = %v, want %v", level, k, f[k], v)
			}
		}
		for k, v := range f {
			if s, ok := v.(string); ok && strings.Contains(s, "secret-payload") {
				t.Errorf("field %s logs the payload", k)
			}
		}
	}
}

func TestRetryBoundsPanicStacks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addHandler("panics", middleware.RetryConfig{MaxRetries: middleware.NoRetries, MaxStackLength: 100},
		func(*message.Message) error { panic("boom") }, wmiddleware.Recoverer)
	h.run()
	h.publish("x")
	waitFor(t, 20*time.Second, func() bool { return len(h.poisoned()) == 1 }, "panicking message not poisoned")
	last := h.poisoned()[0].Metadata.Get(middleware.MetadataLastError)
	if !strings.HasPrefix(last, "panic: boom\n") {
		t.Errorf("last error %q does not start with the panic value", last)
	}
	if len(last) > len("panic: boom\n")+100+len("…") {
		t.Errorf("last error is %d bytes, want the stack cut to 100", len(last))
	}
}

// TestRetryPoisonRecordsGroupAndHandler also checks that admin's TopicInfo
// finds the middleware's poison topic without being told where to look.
func TestRetryPoisonRecordsGroupAndHandler(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addHandler("billing", middleware.RetryConfig{MaxRetries: middleware.NoRetries},
		func(*message.Message) error { return errors.New("no") })
	h.run()
	h.publish("x")
	waitFor(t, 20*time.Second, func() bool { return len(h.poisoned()) == 1 }, "message not poisoned")
	md := h.poisoned()[0].Metadata
	if md.Get(redrive.MetadataPoisonedConsumerGroup) != "billing" || md.Get(wmiddleware.PoisonedHandlerKey) != "billing" {
		t.Errorf("poisoned message records group %q and handler %q, want billing for both",
			md.Get(redrive.MetadataPoisonedConsumerGroup), md.Get(wmiddleware.PoisonedHandlerKey))
	}
	adm, err := admin.NewAdmin(admin.Config{Client: h.client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := adm.TopicInfo(context.Background(), h.topic, admin.TopicInfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.PoisonTopics) != 1 || info.PoisonTopics[0].PoisonTopic != h.poison || info.PoisonTopics[0].Count != 1 {
		t.Errorf("TopicInfo.PoisonTopics = %+v, want 1 message in %s", info.PoisonTopics, h.poison)
	}
}

// goChannelRouter runs handlers on a GoChannel with retry; it returns the
// GoChannel and the router, to be run by the caller.
func goChannelRouter(t *testing.T, logger watermill.LoggerAdapter) (*gochannel.GoChannel, *message.Router) {
	t.Helper()
	gc := gochannel.NewGoChannel(gochannel.Config{}, logger)
	t.Cleanup(func() { _ = gc.Close() })
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return gc, router
}

func runRouter(t *testing.T, router *message.Router) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = router.Run(context.Background())
	}()
	t.Cleanup(func() {
		_ = router.Close()
		<-done
	})
	<-router.Running()
}

func TestRetryInProcessOnGoChannelTellsOnce(t *testing.T) {
	t.Parallel()
	logger := watermill.NewCaptureLogger()
	gc, router := goChannelRouter(t, logger)
	events := make(chan middleware.RetryEvent, 16)
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher: gc, PoisonTopic: "poison", InitialInterval: 50 * time.Millisecond,
		OnRetry: func(e middleware.RetryEvent) { events <- e },
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retry.Middleware)
	rec := newRecorder()
	router.AddConsumerHandler("inproc", "orders", gc, func(msg *message.Message) error {
		if rec.record(msg) <= 2 {
			return errors.New("not yet")
		}
		return nil
	})
	runRouter(t, router)
	msgs := []*message.Message{message.NewMessage("m1", nil), message.NewMessage("m2", nil)}
	if err := gc.Publish("orders", msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() bool { return len(rec.of("m1")) == 3 && len(rec.of("m2")) == 3 }, "messages not retried in process")
	for _, id := range []string{"m1", "m2"} {
		d := rec.of(id)
		if gap := d[1].at.Sub(d[0].at); gap < 50*time.Millisecond {
			t.Errorf("%s: retry after %s, before its 50ms backoff", id, gap)
		}
	}
	for range 4 {
		if e := <-events; !e.InProcess {
			t.Errorf("RetryEvent.InProcess is false on GoChannel")
		}
	}
	if n := len(captured(logger, watermill.InfoLogLevel, "Retrying in process: the handler waits each backoff and runs again on the same message; "+
		"meanwhile it reads no other message of a subscriber that delivers one at a time, and a stop during the wait "+
		"nacks the message with its retry count lost. For durable retries read this topic with a redrive Subscriber "+
		"in a consumer group, or set RetryConfig.Delay to DelayInPublisher or DelayDurable")); n != 1 {
		t.Errorf("told %d times that the handler retries in process, want once", n)
	}
}

func TestRetryDelayInPublisherRoundsUp(t *testing.T) {
	t.Parallel()
	gc, router := goChannelRouter(t, watermill.NopLogger{})
	retries, err := gc.Subscribe(context.Background(), middleware.RetryTopic("orders", "rounded"))
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan middleware.RetryEvent, 1)
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher: gc, PoisonTopic: "poison", Delay: middleware.DelayInPublisher,
		InitialInterval: 300 * time.Millisecond,
		OnRetry:         func(e middleware.RetryEvent) { events <- e },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	router.AddConsumerHandler("rounded", "orders", gc, func(*message.Message) error { return errors.New("no") }).AddMiddleware(retry.Middleware)
	runRouter(t, router)
	failedBefore := time.Now()
	orig := message.NewMessage("orig-uuid", nil)
	if err := gc.Publish("orders", orig); err != nil {
		t.Fatal(err)
	}
	e := <-events
	if e.DueAt.Nanosecond() != 0 || e.DueAt.Before(failedBefore.Add(300*time.Millisecond)) {
		t.Errorf("due at %s: want a whole second no earlier than the 300ms backoff", e.DueAt)
	}
	got := <-retries
	got.Ack()
	until, err := time.Parse(time.RFC3339, got.Metadata.Get(delay.DelayedUntilKey))
	if err != nil || !until.Equal(e.DueAt) {
		t.Errorf("%s = %q (%v), want %s", delay.DelayedUntilKey, got.Metadata.Get(delay.DelayedUntilKey), err, e.DueAt)
	}
	if got.UUID == "orig-uuid" || got.Metadata.Get(middleware.MetadataOriginalUUID) != "orig-uuid" {
		t.Errorf("published retry has UUID %q and original %q: want a new UUID and the original in metadata",
			got.UUID, got.Metadata.Get(middleware.MetadataOriginalUUID))
	}
}

// TestDurableRetriesSurviveRestart stops the durable service while a retry
// waits, then starts another on the same set: it publishes the retry through
// the broker's publisher to the handler's retry topic.
func TestDurableRetriesSurviveRestart(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	name := redistest.RandomTopic("durable")
	gc, router := goChannelRouter(t, watermill.NopLogger{})
	newDurable := func() *middleware.DurableRetries {
		d, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{Client: client, Publisher: gc, Name: name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	first := newDurable()
	t.Cleanup(func() { client.Del(context.Background(), first.Key()) })
	scheduled := make(chan struct{}, 1)
	retry, err := middleware.NewRetry(middleware.RetryConfig{
		Publisher: gc, PoisonTopic: "poison", Delay: middleware.DelayDurable, Durable: first,
		InitialInterval: 500 * time.Millisecond,
		OnRetry:         func(middleware.RetryEvent) { scheduled <- struct{}{} },
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	router.AddMiddleware(retry.Middleware)
	rec := newRecorder()
	handler := func(msg *message.Message) error {
		rec.record(msg)
		if msg.Metadata.Get(middleware.MetadataAttempts) == "" {
			return errors.New("first attempt fails")
		}
		return nil
	}
	router.AddConsumerHandler("durable", "orders", gc, handler)
	middleware.AddRetryHandler(router, "durable", "orders", gc, handler)
	runRouter(t, router)
	if err := gc.Publish("orders", message.NewMessage("orig", nil)); err != nil {
		t.Fatal(err)
	}
	<-scheduled
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if n := client.ZCard(context.Background(), first.Key()).Val(); n != 1 {
		t.Fatalf("%d retries held in Redis after the service stopped, want 1", n)
	}
	second := newDurable()
	<-second.Published()
	var retried *message.Message
	waitFor(t, 20*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for id, d := range rec.deliveries {
			if id != "orig" && len(d) == 1 {
				retried = message.NewMessage(id, nil)
				retried.Metadata = d[0].metadata
				return true
			}
		}
		return false
	}, "the retry held across the restart never reached the handler")
	if retried.Metadata.Get(middleware.MetadataOriginalUUID) != "orig" {
		t.Errorf("retry %s has original UUID %q, want orig", retried.UUID, retried.Metadata.Get(middleware.MetadataOriginalUUID))
	}
	if n := client.ZCard(context.Background(), first.Key()).Val(); n != 0 {
		t.Errorf("%d retries still held after publishing", n)
	}
}

func TestRetryConfigRefusesWhatCannotWork(t *testing.T) {
	pub := &redrive.Publisher{}
	gc := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer gc.Close()
	client := redistest.NewClient(t)
	durable, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{Client: client, Publisher: gc, Name: redistest.RandomTopic("v")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer durable.Close()
	cases := []struct {
		name   string
		config middleware.RetryConfig
		want   string
	}{
		{"durable without service", middleware.RetryConfig{Publisher: gc, PoisonTopic: "p", Delay: middleware.DelayDurable}, "NewDurableRetries"},
		{"service without durable", middleware.RetryConfig{Publisher: gc, PoisonTopic: "p", Durable: durable}, "DelayDurable"},
		{"publisher delays into redrive", middleware.RetryConfig{Publisher: pub, PoisonTopic: "p", Delay: middleware.DelayInPublisher}, "OtherBrokersIntoRedis"},
		{"unknown mode", middleware.RetryConfig{Publisher: gc, PoisonTopic: "p", Delay: 7}, "DelayMode"},
		{"bad log level", middleware.RetryConfig{Publisher: gc, PoisonTopic: "p", FailureLogLevel: 9}, "FailureLogLevel"},
	}
	for _, c := range cases {
		_, err := middleware.NewRetry(c.config, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
	if _, err := middleware.NewDurableRetries(middleware.DurableRetriesConfig{Client: client}, nil); err == nil || !strings.Contains(err.Error(), "Publisher") {
		t.Errorf("DurableRetries without a publisher: err = %v", err)
	}
}
