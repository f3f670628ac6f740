package redistest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// PublishConcurrently starts callers goroutines together, each making calls
// Publish calls to topic of size(caller, call) messages, and waits for them.
// Payloads are "caller:n", n counting the caller's messages from 0, so a test
// can check each caller's order. It returns how many messages were given to
// pub; a failed call fails the test.
func PublishConcurrently(tb testing.TB, pub message.Publisher, topic string, callers, calls int, size func(caller, call int) int) int {
	tb.Helper()
	total := 0
	var wg sync.WaitGroup
	for c := range callers {
		for i := range calls {
			total += size(c, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := 0
			for i := range calls {
				msgs := make([]*message.Message, size(c, i))
				for j := range msgs {
					msgs[j] = message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("%d:%d", c, sent)))
					sent++
				}
				if err := pub.Publish(topic, msgs...); err != nil {
					tb.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return total
}

// CloseTwice closes pub twice, both without error, and checks that a Publish
// afterwards returns closedErr.
func CloseTwice(tb testing.TB, pub message.Publisher, closedErr error) {
	tb.Helper()
	if err := pub.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		tb.Fatalf("second Close: %v", err)
	}
	if err := pub.Publish(RandomTopic("closed"), message.NewMessage("late", nil)); err != closedErr {
		tb.Fatalf("Publish after Close = %v, want %v", err, closedErr)
	}
}
