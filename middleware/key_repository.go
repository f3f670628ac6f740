package middleware

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
)

// ExpiringKeyRepository is a Redis-backed
// message/router/middleware.ExpiringKeyRepository for Watermill's own
// Deduplicator, shared by every consumer that uses the same Prefix.
//
// Watermill's Deduplicator marks a key before the handler runs, whatever the
// outcome, so a retry with the same key is dropped as a duplicate: the
// failed message is then never retried, never poisoned. Give it a key that
// changes with each retry, RetryAwareKey(hasher), or use redrive's
// Deduplicator, which marks a key only once its handler succeeded.
type ExpiringKeyRepository struct {
	client redis.UniversalClient
	window time.Duration
	prefix string
}

var _ wmiddleware.ExpiringKeyRepository = (*ExpiringKeyRepository)(nil)

// NewExpiringKeyRepository returns a repository whose keys, prefix+key, last
// window. An empty prefix is DefaultDeduplicatorPrefix.
func NewExpiringKeyRepository(client redis.UniversalClient, window time.Duration, prefix string) (*ExpiringKeyRepository, error) {
	if client == nil {
		return nil, errors.New("redrive/middleware: NewExpiringKeyRepository: client is nil")
	}
	if window <= 0 {
		return nil, fmt.Errorf("redrive/middleware: NewExpiringKeyRepository: window is %s, must be positive", window)
	}
	if prefix == "" {
		prefix = DefaultDeduplicatorPrefix
	}
	return &ExpiringKeyRepository{client: client, window: window, prefix: prefix}, nil
}

// IsDuplicate records key and reports whether it was already recorded within
// the window.
func (r *ExpiringKeyRepository) IsDuplicate(ctx context.Context, key string) (bool, error) {
	set, err := r.client.SetNX(ctx, r.prefix+key, 1, r.window).Result()
	if err != nil {
		return false, fmt.Errorf("redrive/middleware: record deduplication key: %w", err)
	}
	return !set, nil
}

// RetryAwareKey wraps a Watermill MessageHasher so that each retry of a
// message (redrive_retry_attempts) gets a key of its own: Watermill's
// Deduplicator then lets retries through, and still drops a copy of the same
// attempt.
func RetryAwareKey(hasher wmiddleware.MessageHasher) wmiddleware.MessageHasher {
	return func(msg *message.Message) (string, error) {
		k, err := hasher(msg)
		if err != nil {
			return "", err
		}
		return k + "#" + strconv.Itoa(failedAttempts(msg)), nil
	}
}
