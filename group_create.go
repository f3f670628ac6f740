package redrive

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redisinfo"
)

// ErrGroupMissingAtOOM is wrapped by Subscribe when Redis is out of memory
// (maxmemory with the noeviction policy) and a consumer group or retry
// stream the subscription needs does not exist yet: Redis refuses to create
// it until memory is freed.
var ErrGroupMissingAtOOM = errors.New("redrive: Redis is out of memory and the consumer group does not exist yet")

// createGroup creates group on stream (and the stream when missing), with the
// group starting at start; a group that already exists is fine.
//
// A Redis at maxmemory with the noeviction policy refuses XGROUP CREATE with
// "OOM command not allowed" even when the group exists (its memory check
// comes before the BUSYGROUP one), while XREADGROUP, XACK and XDEL still
// work. So on OOM the group is looked up instead: when it exists the
// subscriber starts and drains the backlog that filled Redis (and its
// trimmer frees the memory); when it does not, the error says so.
func createGroup(ctx context.Context, client redis.UniversalClient, stream, group, start string) error {
	err := client.XGroupCreateMkStream(ctx, stream, group, start).Err()
	if err == nil || redisinfo.IsBusyGroup(err) {
		return nil
	}
	if !redisinfo.IsOOM(err) {
		return fmt.Errorf("redrive: create consumer group %q on %q: %w", group, stream, err)
	}
	exists, lookErr := groupExists(ctx, client, stream, group)
	switch {
	case lookErr != nil:
		return fmt.Errorf("redrive: create consumer group %q on %q: %w (and looking it up failed: %v)", group, stream, err, lookErr)
	case !exists:
		return fmt.Errorf("%w: cannot create consumer group %q on %q until memory is freed (%v)", ErrGroupMissingAtOOM, group, stream, err)
	}
	return nil
}

// groupExists reports whether stream has consumer group group.
func groupExists(ctx context.Context, client redis.UniversalClient, stream, group string) (bool, error) {
	groups, err := client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if redisinfo.IsNoSuchKey(err) {
			return false, nil
		}
		return false, err
	}
	for _, g := range groups {
		if g.Name == group {
			return true, nil
		}
	}
	return false, nil
}
