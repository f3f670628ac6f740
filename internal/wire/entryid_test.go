package wire

import (
	"testing"
	"time"
)

func TestEntryTime(t *testing.T) {
	cases := []struct {
		id   string
		want time.Time
	}{
		{"1700000000123-0", time.UnixMilli(1700000000123)},
		{"1700000000123-42", time.UnixMilli(1700000000123)},
		{"1700000000123", time.UnixMilli(1700000000123)},
		{"0-1", time.Time{}},
		{"-1", time.Time{}},
		{"x-1", time.Time{}},
		{"", time.Time{}},
	}
	for _, c := range cases {
		if got := EntryTime(c.id); !got.Equal(c.want) {
			t.Errorf("EntryTime(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}
