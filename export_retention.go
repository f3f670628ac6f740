package redrive

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/scripts"
)

// QueueRetentionReport queues on pipe a read-only run of the trimmer's script
// on stream (TrimStream with dryRun), judged against retainAcked, so a
// monitoring read can report what each consumer group holds back in the same
// round trip as its other reads. It is for monitoring of your own (a health
// check, a dashboard) that reads many topics in one pipeline, as the metrics
// package does; for one stream, TrimStream with dryRun is simpler. The script
// is sent whole (EVAL), as a pipeline cannot fall back from EVALSHA. Read the
// reply with ParseRetentionReport after Exec.
func QueueRetentionReport(ctx context.Context, pipe redis.Pipeliner, stream string, retainAcked time.Duration) *redis.Cmd {
	return scripts.TrimStream.QueueSource(ctx, pipe, trimArgs(stream, max(retainAcked, 0), false)).Cmd
}

// ParseRetentionReport reads the reply of a QueueRetentionReport command.
func ParseRetentionReport(stream string, cmd *redis.Cmd) (TrimResult, error) {
	res, err := scripts.TrimStream.ReplyOf(cmd, scripts.TrimStreamArgs{Stream: stream})
	return trimResult("retention report of", stream, res, err)
}
