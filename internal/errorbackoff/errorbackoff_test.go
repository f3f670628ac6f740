package errorbackoff

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	// Each step is a failure (its want is the pause returned) or, with want
	// 0, a success.
	cases := []struct {
		name       string
		first, max time.Duration
		steps      []time.Duration
	}{
		{
			name: "doubles up to the cap and stays there", first: 50 * ms, max: 5 * time.Second,
			steps: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 5000 * ms},
		},
		{
			name: "a success starts over", first: 50 * ms, max: 5 * time.Second,
			steps: []time.Duration{50 * ms, 100 * ms, 200 * ms, 0, 50 * ms, 100 * ms, 0, 0, 50 * ms},
		},
		{
			name: "cap not a power of two of the first", first: 30 * ms, max: 100 * ms,
			steps: []time.Duration{30 * ms, 60 * ms, 100 * ms, 100 * ms},
		},
		{
			name: "first above the cap is capped", first: 10 * time.Second, max: 5 * time.Second,
			steps: []time.Duration{5 * time.Second, 5 * time.Second, 0, 5 * time.Second},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := New(c.first, c.max)
			for i, want := range c.steps {
				if want == 0 {
					b.Succeeded()
					continue
				}
				if got := b.Failed(); got != want {
					t.Fatalf("step %d: Failed() = %s, want %s", i, got, want)
				}
			}
		})
	}
}

// hourClock moves an hour ahead each time it is read.
type hourClock struct{ now time.Time }

func (c *hourClock) Now() time.Time {
	c.now = c.now.Add(time.Hour)
	return c.now
}

func TestBackoffNeverGivesUp(t *testing.T) {
	b := New(time.Millisecond, 2*time.Millisecond)
	b.exp.Clock = &hourClock{now: time.Now()}
	for i := range 1000 {
		if got := b.Failed(); got <= 0 {
			t.Fatalf("failure %d, %d hours in: Failed() = %s, want a pause", i, i, got)
		}
	}
}
