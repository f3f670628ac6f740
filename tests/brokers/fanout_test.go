package brokers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// TestFanOutSubscribersRetryInProcess runs three redrive fan-out
// subscribers (no consumer group), as three instances would, on two topics:
// one handler fails once per message, the other always. Retries wait in
// process: nothing is published again to the topic (which every instance
// would read), and each instance poisons its own copy once.
func TestFanOutSubscribersRetryInProcess(t *testing.T) {
	t.Parallel()
	const instances = 3
	client := redistest.NewClient(t)
	rd := newRedrive(t)
	flakyTopic, brokenTopic, poisonTopic := randomName("fanflaky"), randomName("fanbroken"), randomName("fanpoison")
	t.Cleanup(func() {
		client.Del(context.Background(), flakyTopic, brokenTopic, poisonTopic,
			redrive.KeysFor(flakyTopic).Delayed, redrive.KeysFor(brokenTopic).Delayed, redrive.KeysFor(poisonTopic).Delayed)
	})
	router := newRetryRouter(t, rd.retry, poisonTopic)
	rec := newRecorder()
	for i := range instances {
		flaky, broken := fmt.Sprintf("flaky%d", i), fmt.Sprintf("broken%d", i)
		router.AddConsumerHandler(flaky, flakyTopic, newRedriveSubscriber(t, client, ""), func(msg *message.Message) error {
			if rec.record(flaky, msg) == 1 {
				return errScenario
			}
			return nil
		})
		router.AddConsumerHandler(broken, brokenTopic, newRedriveSubscriber(t, client, ""), func(msg *message.Message) error {
			rec.record(broken, msg)
			return errScenario
		})
	}
	startRouter(t, router)
	payloads := []string{"a", "b", "c"}
	publish(t, rd.publisher, flakyTopic, payloads)
	publish(t, rd.publisher, brokenTopic, payloads)

	poisonLen := func() int64 { return client.XLen(context.Background(), poisonTopic).Val() }
	waitFor(t, "every instance to finish every message", func() bool {
		for i := range instances {
			for _, p := range payloads {
				if len(rec.of(fmt.Sprintf("flaky%d", i), p)) < 2 || len(rec.of(fmt.Sprintf("broken%d", i), p)) < 1+scenarioMaxRetries {
					return false
				}
			}
		}
		return poisonLen() >= instances*int64(len(payloads))
	})
	time.Sleep(quietPeriod)

	for i := range instances {
		for _, p := range payloads {
			if n := len(rec.of(fmt.Sprintf("flaky%d", i), p)); n != 2 {
				t.Errorf("instance %d ran flaky %d times on %s, want 2 (its own retry only)", i, n, p)
			}
			runs := rec.of(fmt.Sprintf("broken%d", i), p)
			if len(runs) != 1+scenarioMaxRetries {
				t.Errorf("instance %d ran broken %d times on %s, want %d", i, len(runs), p, 1+scenarioMaxRetries)
			}
			checkGaps(t, fmt.Sprintf("broken%d %s", i, p), runs)
		}
	}
	for _, topic := range []string{flakyTopic, brokenTopic} {
		if n := client.XLen(context.Background(), topic).Val(); n != int64(len(payloads)) {
			t.Errorf("topic %s holds %d entries, want %d: a retry was re-broadcast", topic, n, len(payloads))
		}
		if n := client.ZCard(context.Background(), redrive.KeysFor(topic).Delayed).Val(); n != 0 {
			t.Errorf("topic %s has %d delayed retries, want none", topic, n)
		}
	}
	if n := poisonLen(); n != instances*int64(len(payloads)) {
		t.Errorf("poison topic holds %d entries, want %d (one per instance and message)", n, instances*len(payloads))
	}
	if n := client.ZCard(context.Background(), redrive.KeysFor(poisonTopic).Delayed).Val(); n != 0 {
		t.Errorf("%d poisoned messages sit in the poison topic's delayed set", n)
	}
}
