package brokers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/middleware"
)

// TestMixedRouterRedriveAndPostgres runs one router with the retry
// middleware added router-wide (Publisher: redrive), as the README's first
// snippet does, and handlers on redrive and on PostgreSQL. The redrive
// handler retries through its group's delayed set; the PostgreSQL handler
// retries in process and nothing of it enters Redis; a PostgreSQL handler
// with its own retry middleware (PostgreSQL publisher, DelayInPublisher)
// poisons into PostgreSQL; and a PostgreSQL handler whose retries run out
// under the router-wide (redrive) middleware is not poisoned into Redis.
func TestMixedRouterRedriveAndPostgres(t *testing.T) {
	t.Parallel()
	rd := newRedrive(t)
	pg := newPostgresDelayed(t)
	client := redistest.NewClient(t)
	id := randomName("")
	redriveTopic, pgTopic, pgOwnTopic, pgStuckTopic := randomName("rd"), randomName("pg"), randomName("pgown"), randomName("pgstuck")
	redisPoison, pgPoison := randomName("rdpoison"), randomName("pgpoison")
	t.Cleanup(func() {
		client.Del(context.Background(), redriveTopic, redisPoison, redrive.KeysFor(redriveTopic).Delayed)
	})
	forgetOnCleanup(t, pg, []string{pgTopic, pgOwnTopic, pgStuckTopic, pgPoison}, []string{"pg" + id, "pgown" + id, "pgstuck" + id})
	pgPoisoned := collect(t, pg.subscriber("poisonreader"), pgPoison)

	base := middleware.RetryConfig{MaxRetries: scenarioMaxRetries, InitialInterval: scenarioInitialInterval, MaxInterval: 10 * time.Second}
	redisCfg := base
	redisCfg.Publisher, redisCfg.PoisonTopic = rd.publisher, redisPoison
	redisRetry, err := middleware.NewRetry(redisCfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	pgCfg := base
	pgCfg.Publisher, pgCfg.PoisonTopic = pg.publisher, pgPoison
	pgCfg.Delay, pgCfg.DelayPrecision = middleware.DelayInPublisher, time.Second
	pgRetry, err := middleware.NewRetry(pgCfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	stuckErrs := make(chan error, 16)
	// Outermost: sees what the retry middleware returns to the router for
	// pgstuck.
	router.AddMiddleware(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil && message.HandlerNameFromCtx(msg.Context()) == "pgstuck"+id {
				select {
				case stuckErrs <- err:
				default:
				}
			}
			return out, err
		}
	})
	router.AddMiddleware(redisRetry.Middleware, wmiddleware.Recoverer)
	rec := newRecorder()
	failTwice := func(name string) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			if n := rec.record(name, msg); n <= 2 {
				return fmt.Errorf("attempt %d: %w", n, errScenario)
			}
			return nil
		}
	}
	router.AddConsumerHandler("rd"+id, redriveTopic, rd.subscriber("rd"+id), failTwice("rd"))
	router.AddConsumerHandler("pg"+id, pgTopic, pg.subscriber("pg"+id), failTwice("pg"))
	pgOwn := func(msg *message.Message) error { rec.record("pgown", msg); return errScenario }
	router.AddConsumerHandler("pgown"+id, pgOwnTopic, pg.subscriber("pgown"+id), pgOwn).AddMiddleware(pgRetry.Middleware)
	middleware.AddRetryHandler(router, "pgown"+id, pgOwnTopic, pg.subscriber("pgown"+id), pgOwn).AddMiddleware(pgRetry.Middleware)
	router.AddConsumerHandler("pgstuck"+id, pgStuckTopic, pg.subscriber("pgstuck"+id), func(msg *message.Message) error {
		rec.record("pgstuck", msg)
		return errScenario
	})
	startRouter(t, router)

	payload := []string{`{"m":0}`}
	publish(t, rd.publisher, redriveTopic, payload)
	publish(t, pg.publisher, pgTopic, payload)
	publish(t, pg.publisher, pgOwnTopic, payload)
	publish(t, pg.publisher, pgStuckTopic, payload)

	waitFor(t, "both fail-twice handlers to succeed and pgown to be poisoned", func() bool {
		return len(rec.of("rd", payload[0])) >= 3 && len(rec.of("pg", payload[0])) >= 3 && len(pgPoisoned.all()) >= 1
	})
	var stuckErr error
	select {
	case stuckErr = <-stuckErrs:
	case <-time.After(waitTimeout):
		t.Fatal("the PostgreSQL handler under the redrive retry middleware never gave up")
	}
	if !errors.Is(stuckErr, middleware.ErrOtherBroker) {
		t.Errorf("pgstuck: the router got %v, want an error wrapping ErrOtherBroker", stuckErr)
	}
	time.Sleep(quietPeriod)

	for _, h := range []string{"rd", "pg"} {
		runs := rec.of(h, payload[0])
		if len(runs) != 3 {
			t.Errorf("%s ran %d times, want 3", h, len(runs))
		}
		checkGaps(t, h, runs)
	}
	checkPoisoned(t, "pgown", pgPoisoned.all(), payload, pgOwnTopic, "pgown"+id)
	if n := len(rec.of("pgown", payload[0])); n != 1+scenarioMaxRetries {
		t.Errorf("pgown ran %d times, want %d", n, 1+scenarioMaxRetries)
	}
	// Nothing of the PostgreSQL handlers entered Redis.
	for _, topic := range []string{pgTopic, pgOwnTopic, pgStuckTopic} {
		keys := []string{topic, redrive.KeysFor(topic).Delayed, middleware.RetryTopic(topic, "pg"+id),
			redrive.KeysFor(middleware.RetryTopic(topic, "pg"+id)).Delayed}
		if n, err := client.Exists(context.Background(), keys...).Result(); err != nil || n != 0 {
			t.Errorf("Redis holds %d keys of PostgreSQL topic %s (err %v)", n, topic, err)
		}
	}
	if n, err := client.XLen(context.Background(), redisPoison).Result(); err != nil || n != 0 {
		t.Errorf("the Redis poison topic holds %d entries (err %v), want none: pgstuck's message belongs to PostgreSQL", n, err)
	}
}
