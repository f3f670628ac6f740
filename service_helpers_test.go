package redrive

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/entryfields"
	"github.com/redrive-go/redrive/internal/redistest"
)

// signalTimeout bounds every wait of the services' tests on a signal or a
// condition; it is only reached when something is broken.
const signalTimeout = 10 * time.Second

const testGroup = "g"

// serviceTopic is a fresh topic on the shared server whose stream and group
// retry stream exist with the group testGroup; its keys are deleted when the
// test ends.
type serviceTopic struct {
	client *redis.Client
	keys   TopicKeys
	retry  string
}

func newServiceTopic(t *testing.T) serviceTopic {
	t.Helper()
	client := redistest.NewClient(t)
	topic := redistest.RandomTopic("services-")
	keys := KeysFor(topic)
	st := serviceTopic{client: client, keys: keys, retry: keys.GroupRetry(testGroup)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		found, _ := client.Keys(ctx, strings.TrimSuffix(keys.Delayed, ":delayed")+"*").Result()
		_ = client.Del(ctx, append(found, topic)...).Err()
	})
	for _, stream := range st.streams() {
		if err := createGroup(context.Background(), client, stream, testGroup, "0"); err != nil {
			t.Fatalf("create group on %s: %v", stream, err)
		}
	}
	return st
}

func (st serviceTopic) streams() []string { return []string{st.keys.Stream, st.retry} }

func (st serviceTopic) groupStreams() groupStreams {
	return groupStreams{Group: testGroup, RetryStream: st.retry}
}

// add appends n messages to stream, encoded as the Publisher does, and
// returns them.
func (st serviceTopic) add(t *testing.T, stream string, n int) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("payload"))
		fields, err := DefaultMarshallerUnmarshaller{}.Marshal(st.keys.Stream, msgs[i])
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if err := st.client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: entryfields.AppendPairs(nil, fields)}).Err(); err != nil {
			t.Fatalf("XADD %s: %v", stream, err)
		}
	}
	return msgs
}

// read reads up to n new entries of stream as consumer, so they are pending
// for it.
func (st serviceTopic) read(t *testing.T, stream, consumer string, n int) []redis.XMessage {
	t.Helper()
	res, err := st.client.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: testGroup, Consumer: consumer, Streams: []string{stream, ">"}, Count: int64(n), Block: -1,
	}).Result()
	if err != nil {
		t.Fatalf("XREADGROUP %s as %s: %v", stream, consumer, err)
	}
	return res[0].Messages
}

// setIdle makes ids of stream pending for consumer, idle for idle and, when
// deliveries > 0, delivered that many times, as if time had passed.
func (st serviceTopic) setIdle(t *testing.T, stream, consumer string, idle time.Duration, deliveries int, ids ...string) {
	t.Helper()
	for _, id := range ids {
		args := []interface{}{"XCLAIM", stream, testGroup, consumer, 0, id, "IDLE", idle.Milliseconds()}
		if deliveries > 0 {
			args = append(args, "RETRYCOUNT", deliveries)
		}
		if err := st.client.Do(context.Background(), append(args, "JUSTID")...).Err(); err != nil {
			t.Fatalf("XCLAIM %s %s: %v", stream, id, err)
		}
	}
}

// pending lists the group's pending entries on stream.
func (st serviceTopic) pending(t *testing.T, stream string) []redis.XPendingExt {
	t.Helper()
	p, err := st.client.XPendingExt(context.Background(), &redis.XPendingExtArgs{
		Stream: stream, Group: testGroup, Start: "-", End: "+", Count: 1000,
	}).Result()
	if err != nil {
		t.Fatalf("XPENDING %s: %v", stream, err)
	}
	return p
}

func (st serviceTopic) len(t *testing.T, stream string) int64 {
	t.Helper()
	n, err := st.client.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatalf("XLEN %s: %v", stream, err)
	}
	return n
}

func ids(entries []redis.XMessage) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

// TestServicesStartStop: the periodic services start and stop any number of
// times, from several goroutines at once, and Stop without Start is fine.
func TestServicesStartStop(t *testing.T) {
	t.Parallel()
	st := newServiceTopic(t)
	logger := watermill.NopLogger{}
	for name, svc := range map[string]service{
		"claimer": newClaimer(claimerConfig{
			Client: st.client, Topic: st.keys.Stream, Streams: st.streams(), Group: testGroup, Consumer: "c",
			MaxIdleTime: time.Minute, ClaimBatchSize: 10, ClaimInterval: time.Millisecond, Logger: logger,
		}, newFakeClaimTarget(10), newTestPoisoner(t, st, st.groupStreams(), nil)),
		"consumer janitor": newConsumerJanitor(consumerJanitorConfig{
			Client: st.client, Streams: st.streams(), Group: testGroup, Consumer: "c",
			ConsumerTimeout: time.Hour, Interval: time.Millisecond, Logger: logger,
		}),
		"in-flight keeper": newInflightKeeper(inflightKeeperConfig{
			Client: st.client, Group: testGroup, Consumer: "c", MaxIdleTime: time.Millisecond, Logger: logger,
		}, heldList{}),
	} {
		t.Run(name, func(t *testing.T) {
			svc.Stop()
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						if err := svc.Start(context.Background()); err != nil {
							t.Errorf("Start: %v", err)
							return
						}
						svc.Stop()
					}
				}()
			}
			wg.Wait()
			svc.Stop()
		})
	}
}
