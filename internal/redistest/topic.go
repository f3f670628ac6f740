package redistest

import (
	"crypto/rand"
	"encoding/hex"
)

// RandomTopic returns prefix followed by 16 random hex digits, so tests that
// run in parallel (or in parallel packages against the shared server) never
// share a topic or key.
func RandomTopic(prefix string) string {
	var b [8]byte
	// crypto/rand.Read never fails (it crashes the program instead), so
	// there is no error to handle.
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
