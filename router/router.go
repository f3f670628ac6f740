// Package router puts redrive on a Watermill message.Router in a few lines.
//
// Each handler added by name and topic gets its own redrive Subscriber, in a
// consumer group named after the handler, so handlers on one topic each see
// every message and retry on their own. Each is wrapped in the retry
// middleware, with one policy for all handlers that any handler may
// override, and a poison topic for the messages whose retries run out. The
// subscribers' background services (the delayed-message movers, the claimer
// of dead consumers' messages, the in-flight keeper and the consumer janitor)
// start when the router runs and stop when it closes.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	r, err := router.New(router.Config{Client: rdb}, logger)
//	if err != nil {
//		return err
//	}
//	if _, err := r.AddConsumerHandler("send-invoice", "orders", sendInvoice); err != nil {
//		return err
//	}
//	return r.Run(ctx)
//
// # Middleware order
//
// Every handler added here is wrapped, outermost first, in:
//
//  1. redrive's retry middleware (middleware.Retry): a handler error becomes
//     a retry scheduled in Redis, or a poisoned message, and the delivery is
//     acked;
//  2. Watermill's Recoverer: a panic becomes an error with its stack, which
//     the retry middleware then retries like any other error;
//  3. Config.Middleware, then the handler's WithMiddleware, then middleware
//     added later with the returned message.Handler's AddMiddleware;
//  4. the handler.
//
// Recoverer must sit inside the retry middleware: outside it, a panic would
// skip the retry middleware, the router would nack the message, and it would
// be redelivered at once, forever.
//
// Middleware added to the message.Router itself (AddMiddleware) wraps
// handlers by the order it was added in: added before a handler, it runs
// outside the retry middleware and sees an error only when a retry could not
// be scheduled (Redis unreachable); added after, it runs inside Recoverer.
// Watermill's own Retry and PoisonQueue middleware are not needed with
// redrive's, and add nothing outside it.
//
// # Other brokers
//
// AddOtherBrokerHandler adds a handler reading another Watermill broker, with
// a retry policy of its own whose Publisher is that broker's, so its retries
// and poisoned messages never enter Redis by mistake; when those retries are
// published (DelayInPublisher, DelayDurable) the router also reads the
// handler's retry topic.
package router

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/metrics"
	"github.com/redrive-go/redrive/middleware"
)

// ErrClosed is returned by AddHandler, AddConsumerHandler and Run after Close.
var ErrClosed = errors.New("redrive/router: router closed")

// Config configures a Router.
type Config struct {
	// Client is the Redis client of every handler's subscriber and of the
	// default Publisher: *redis.Client, *redis.ClusterClient or a Sentinel
	// failover client. Required. The Router never closes it.
	Client redis.UniversalClient

	// Router is an existing Watermill router to add the handlers to, so they
	// run beside handlers on other brokers. Close closes it. Nil: New creates
	// one with RouterConfig.
	Router *message.Router
	// RouterConfig configures the router New creates when Router is nil.
	RouterConfig message.RouterConfig

	// Publisher publishes the messages returned by handlers added with
	// AddHandler, and is the retry middleware's Publisher. Default: a redrive
	// Publisher on Client, which Close closes. A Publisher given here is not
	// closed.
	Publisher message.Publisher

	// Subscriber is the configuration of every handler's subscriber (a
	// handler's WithSubscriberConfig replaces it). Client is set to
	// Config.Client and ConsumerGroup to the handler's consumer group; an
	// empty PoisonTopic is set to the handler's poison topic.
	Subscriber redrive.SubscriberConfig

	// Retry is the retry policy of every handler (a handler's WithRetry
	// replaces it). Its Publisher is set to Config.Publisher when empty. Its
	// PoisonTopic, when empty, is set for each handler to the poison stream of
	// the handler's topic, redrive.KeysFor(topic).Poison, where the subscriber
	// also puts the entries it cannot deliver; set it to send the poisoned
	// messages of every handler to one topic.
	Retry middleware.RetryConfig

	// Middleware wraps every handler added through this Router, inside the
	// retry middleware and Recoverer (see the package documentation).
	Middleware []message.HandlerMiddleware

	// Metrics, when set, counts the retries and poisoned messages of every
	// handler and the claimed and crash-looped messages of its subscriber,
	// and watches its topic and consumer group for the gauges (and a shared
	// PoisonTopic, whose length is redrive_stream_entries). The hooks already
	// in Retry and Subscriber are still called.
	Metrics *metrics.Collector
}

func (c *Config) setDefaults() {
	if c.Retry.Publisher == nil {
		c.Retry.Publisher = c.Publisher
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("redrive/router: Config.Client is nil")
	}
	if err := c.Retry.ValidatePolicy(); err != nil {
		return fmt.Errorf("redrive/router: Config.Retry: %w", err)
	}
	if err := validateSubscriber(c.Subscriber, c.Client); err != nil {
		return fmt.Errorf("redrive/router: Config.Subscriber: %w", err)
	}
	for i, m := range c.Middleware {
		if m == nil {
			return fmt.Errorf("redrive/router: Config.Middleware[%d] is nil", i)
		}
	}
	return nil
}

// validateSubscriber checks a subscriber configuration, which takes its
// Client from Config.Client (each handler sets its ConsumerGroup, which any
// value may be).
func validateSubscriber(c redrive.SubscriberConfig, client redis.UniversalClient) error {
	c.Client = client
	// NewSubscriber applies the defaults and validates; it does no I/O and
	// starts nothing.
	_, err := redrive.NewSubscriber(c, nil)
	return err
}

// Router runs redrive handlers on a Watermill message.Router.
type Router struct {
	config       Config
	logger       watermill.LoggerAdapter
	router       *message.Router
	publisher    message.Publisher
	ownPublisher bool

	mu          sync.Mutex
	closed      bool
	ran         bool
	subscribers []*redrive.Subscriber
}

// New creates a Router. It does no I/O.
func New(config Config, logger watermill.LoggerAdapter) (*Router, error) {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	r := &Router{config: config, logger: logger, router: config.Router, publisher: config.Publisher}
	if r.router == nil {
		wr, err := message.NewRouter(config.RouterConfig, logger)
		if err != nil {
			return nil, fmt.Errorf("redrive/router: create the Watermill router: %w", err)
		}
		r.router = wr
	}
	if r.publisher == nil {
		pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: config.Client}, logger)
		if err != nil {
			return nil, fmt.Errorf("redrive/router: create the publisher: %w", err)
		}
		r.publisher, r.ownPublisher = pub, true
	}
	if r.config.Retry.Publisher == nil {
		r.config.Retry.Publisher = r.publisher
	}
	return r, nil
}

// HandlerOption changes how one handler is set up.
type HandlerOption func(*handlerOptions)

type handlerOptions struct {
	group      string
	retry      *middleware.RetryConfig
	subscriber *redrive.SubscriberConfig
	publisher  message.Publisher
	middleware []message.HandlerMiddleware
}

// WithConsumerGroup sets the handler's consumer group. Default: the handler's
// name. Handlers in one group share the messages of the topic; handlers in
// different groups each get every message.
func WithConsumerGroup(group string) HandlerOption {
	return func(o *handlerOptions) { o.group = group }
}

// WithRetry replaces Config.Retry for this handler. An empty Publisher or
// PoisonTopic is filled as in Config.Retry.
func WithRetry(config middleware.RetryConfig) HandlerOption {
	return func(o *handlerOptions) { o.retry = &config }
}

// WithSubscriberConfig replaces Config.Subscriber for this handler. Client,
// ConsumerGroup and an empty PoisonTopic are filled as in Config.Subscriber.
func WithSubscriberConfig(config redrive.SubscriberConfig) HandlerOption {
	return func(o *handlerOptions) { o.subscriber = &config }
}

// WithPublisher publishes the messages this handler returns with pub instead
// of Config.Publisher (for example to another broker). Only AddHandler
// publishes; the Router does not close pub.
func WithPublisher(pub message.Publisher) HandlerOption {
	return func(o *handlerOptions) { o.publisher = pub }
}

// WithMiddleware wraps this handler in m, inside Config.Middleware.
func WithMiddleware(m ...message.HandlerMiddleware) HandlerOption {
	return func(o *handlerOptions) { o.middleware = append(o.middleware, m...) }
}

// AddHandler adds a handler that reads subscribeTopic and publishes the
// messages it returns to publishTopic, like message.Router.AddHandler. The
// name must be unique in the message.Router. A handler added while the
// router runs starts with r.Router().RunHandlers(ctx).
func (r *Router) AddHandler(name, subscribeTopic, publishTopic string, handlerFunc message.HandlerFunc, opts ...HandlerOption) (*message.Handler, error) {
	if publishTopic == "" {
		return nil, fmt.Errorf("redrive/router: handler %q: publishTopic is empty (use AddConsumerHandler for a handler that publishes nothing)", name)
	}
	return r.addHandler(name, subscribeTopic, publishTopic, handlerFunc, opts)
}

// AddConsumerHandler adds a handler that reads subscribeTopic and publishes
// nothing, like message.Router.AddConsumerHandler. The name must be unique
// in the message.Router. A handler added while the router runs starts with
// r.Router().RunHandlers(ctx).
func (r *Router) AddConsumerHandler(name, subscribeTopic string, handlerFunc message.NoPublishHandlerFunc, opts ...HandlerOption) (*message.Handler, error) {
	if handlerFunc == nil {
		return nil, fmt.Errorf("redrive/router: handler %q: handlerFunc is nil", name)
	}
	h := func(msg *message.Message) ([]*message.Message, error) {
		return nil, handlerFunc(msg)
	}
	return r.addHandler(name, subscribeTopic, "", h, opts)
}

// checkHandler reports what is missing from a handler being added.
func checkHandler(name, topic string, hasFunc bool, o handlerOptions) error {
	switch {
	case name == "":
		return errors.New("redrive/router: handler name is empty")
	case topic == "":
		return fmt.Errorf("redrive/router: handler %q: subscribeTopic is empty", name)
	case !hasFunc:
		return fmt.Errorf("redrive/router: handler %q: handlerFunc is nil", name)
	}
	for i, m := range o.middleware {
		if m == nil {
			return fmt.Errorf("redrive/router: handler %q: WithMiddleware[%d] is nil", name, i)
		}
	}
	return nil
}

func (r *Router) addHandler(name, topic, publishTopic string, handlerFunc message.HandlerFunc, opts []HandlerOption) (*message.Handler, error) {
	o := handlerOptions{group: name}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkHandler(name, topic, handlerFunc != nil, o); err != nil {
		return nil, err
	}
	if o.group == "" {
		return nil, fmt.Errorf("redrive/router: handler %q: WithConsumerGroup is empty", name)
	}

	retryConfig := r.config.Retry
	if o.retry != nil {
		retryConfig = *o.retry
		if retryConfig.Publisher == nil {
			retryConfig.Publisher = r.publisher
		}
	}
	if retryConfig.PoisonTopic == "" {
		retryConfig.PoisonTopic = redrive.KeysFor(topic).Poison
	}
	subConfig := r.config.Subscriber
	if o.subscriber != nil {
		subConfig = *o.subscriber
	}
	subConfig.Client = r.config.Client
	subConfig.ConsumerGroup = o.group
	if subConfig.PoisonTopic == "" {
		subConfig.PoisonTopic = retryConfig.PoisonTopic
	}
	if m := r.config.Metrics; m != nil {
		retryConfig = m.InstrumentRetry(retryConfig)
		subConfig = m.InstrumentSubscriber(subConfig)
	}

	retry, err := middleware.NewRetry(retryConfig, r.logger)
	if err != nil {
		return nil, fmt.Errorf("redrive/router: handler %q: retry policy: %w", name, err)
	}
	sub, err := redrive.NewSubscriber(subConfig, r.logger)
	if err != nil {
		return nil, fmt.Errorf("redrive/router: handler %q: subscriber: %w", name, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if _, exists := r.router.Handlers()[name]; exists {
		return nil, fmt.Errorf("redrive/router: a handler named %q already exists", name)
	}
	var h *message.Handler
	if publishTopic == "" {
		h = r.router.AddConsumerHandler(name, topic, sub, message.NoPublishHandlerFunc(func(msg *message.Message) error {
			_, err := handlerFunc(msg)
			return err
		}))
	} else {
		pub := o.publisher
		if pub == nil {
			pub = r.publisher
		}
		// The message.Router closes a handler's publisher when the handler
		// stops; the publisher is shared, so the Router closes it instead.
		h = r.router.AddHandler(name, topic, sub, publishTopic, sharedPublisher{pub}, handlerFunc)
	}
	h.AddMiddleware(retry.Middleware, wmiddleware.Recoverer)
	h.AddMiddleware(r.config.Middleware...)
	h.AddMiddleware(o.middleware...)
	r.subscribers = append(r.subscribers, sub)
	if m := r.config.Metrics; m != nil {
		m.Watch(topic, o.group)
		if retryConfig.PoisonTopic != redrive.KeysFor(topic).Poison {
			m.Watch(retryConfig.PoisonTopic)
		}
	}
	return h, nil
}

// Run runs the message.Router (and so every handler, including those on
// other brokers) until ctx ends or Close is called, like
// message.Router.Run. When ctx ends, Run closes the Router before returning.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.ran = true
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			if err := r.Close(); err != nil {
				r.logger.Error("Closing the router failed", err, nil)
			}
		case <-done:
		}
	}()
	if err := r.router.Run(ctx); err != nil {
		return fmt.Errorf("redrive/router: run: %w", err)
	}
	return nil
}

// Running is closed once the router runs: every handler has subscribed.
func (r *Router) Running() chan struct{} {
	return r.router.Running()
}

// Router returns the underlying Watermill router, for its plugins,
// decorators and router-level middleware, and for handlers on other brokers.
// Running it directly instead of with Run works too; call Close afterwards,
// which also closes the Publisher the Router created.
func (r *Router) Router() *message.Router {
	return r.router
}

// Publisher returns the Publisher the Router's handlers publish with and
// its retry middleware publishes through: Config.Publisher, or the redrive
// Publisher New created on Config.Client. Publish with it from outside the
// handlers too (an HTTP endpoint starting a flow), sharing one publisher
// and its connections. Do not close it: Close closes the one New created,
// and never the one Config gave.
func (r *Router) Publisher() message.Publisher {
	return r.publisher
}

// Close stops the router: it closes the message.Router (waiting up to its
// CloseTimeout for the handlers), then every handler's subscriber (waiting
// for their background services) and the Publisher the Router created. It
// never closes the Redis client. It is idempotent.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ran := r.ran
	subs := r.subscribers
	r.mu.Unlock()

	var errs []error
	// A message.Router that never ran would wait its whole CloseTimeout for
	// handlers that never started.
	if ran || r.router.IsRunning() {
		if err := r.router.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the Watermill router: %w", err))
		}
	}
	for _, sub := range subs {
		if err := sub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close a subscriber: %w", err))
		}
	}
	if r.ownPublisher {
		if err := r.publisher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the publisher: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redrive/router: %w", err)
	}
	return nil
}

// sharedPublisher shields a publisher shared by handlers from the
// message.Router, which closes each handler's publisher when the handler
// stops.
type sharedPublisher struct {
	message.Publisher
}

func (sharedPublisher) Close() error { return nil }

// AddOtherBrokerHandler adds a handler that reads topic with subscriber, a
// Subscriber of another Watermill broker (NATS, RabbitMQ, PostgreSQL,
// GoChannel, …), wrapped like redrive's handlers in the retry middleware and
// Recoverer, so a router mixes brokers without one's retries or poisoned
// messages reaching another. WithRetry is required, with the Publisher of
// that broker: its poison topic is there (PoisonTopic, else Config.Retry's),
// and so are retries when its Delay is DelayInPublisher or DelayDurable; then
// the router also adds the handler reading the handler's retry topic
// (middleware.AddRetryHandler) with the same subscriber and middleware.
// WithMiddleware applies to both; WithConsumerGroup, WithSubscriberConfig and
// WithPublisher do not apply and are refused.
func (r *Router) AddOtherBrokerHandler(name, topic string, subscriber message.Subscriber, handlerFunc message.NoPublishHandlerFunc, opts ...HandlerOption) (*message.Handler, error) {
	var o handlerOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkHandler(name, topic, handlerFunc != nil, o); err != nil {
		return nil, err
	}
	switch {
	case subscriber == nil:
		return nil, fmt.Errorf("redrive/router: handler %q: subscriber is nil", name)
	case o.retry == nil || o.retry.Publisher == nil:
		return nil, fmt.Errorf("redrive/router: handler %q reads another broker: give WithRetry(middleware.RetryConfig{Publisher: <that broker's publisher>, …}) so its retries and poisoned messages stay there", name)
	case o.group != "" || o.subscriber != nil || o.publisher != nil:
		return nil, fmt.Errorf("redrive/router: handler %q reads another broker: WithConsumerGroup, WithSubscriberConfig and WithPublisher apply to redrive handlers only (configure the subscriber you pass)", name)
	}
	retryConfig := *o.retry
	if retryConfig.PoisonTopic == "" {
		retryConfig.PoisonTopic = r.config.Retry.PoisonTopic
	}
	if retryConfig.PoisonTopic == "" {
		return nil, fmt.Errorf("redrive/router: handler %q reads another broker: set the PoisonTopic of its WithRetry (a topic of that broker)", name)
	}
	if m := r.config.Metrics; m != nil {
		retryConfig = m.InstrumentRetry(retryConfig)
	}
	retry, err := middleware.NewRetry(retryConfig, r.logger)
	if err != nil {
		return nil, fmt.Errorf("redrive/router: handler %q: retry policy: %w", name, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	published := retryConfig.Delay != middleware.DelayInProcess
	for _, n := range []string{name, name + middleware.RetryHandlerSuffix} {
		if _, exists := r.router.Handlers()[n]; exists && (n == name || published) {
			return nil, fmt.Errorf("redrive/router: a handler named %q already exists", n)
		}
	}
	handlers := []*message.Handler{r.router.AddConsumerHandler(name, topic, subscriber, handlerFunc)}
	if published {
		handlers = append(handlers, middleware.AddRetryHandler(r.router, name, topic, subscriber, handlerFunc))
	}
	for _, h := range handlers {
		h.AddMiddleware(retry.Middleware, wmiddleware.Recoverer)
		h.AddMiddleware(r.config.Middleware...)
		h.AddMiddleware(o.middleware...)
	}
	return handlers[0], nil
}
