package wire

import (
	"strconv"
	"strings"
	"time"
)

// EntryTime returns the time a stream entry ID was generated (its
// millisecond part), or the zero time for an ID not of the form <ms>-<seq>.
func EntryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
