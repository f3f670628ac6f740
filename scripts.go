package redrive

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// Each script lives in lua/ with a header naming its KEYS and ARGV. Every key
// a script touches is passed in KEYS, so scripts work on Redis Cluster.
var (
	//go:embed lua/move_due.lua
	moveDueSource string
	//go:embed lua/requeue.lua
	requeueSource string
	//go:embed lua/poison.lua
	poisonSource string
	//go:embed lua/ack_delete.lua
	ackDeleteSource string
	//go:embed lua/claim.lua
	claimSource string
	//go:embed lua/refresh_inflight.lua
	refreshInflightSource string
	//go:embed lua/delete_idle_consumer.lua
	deleteIdleConsumerSource string
	//go:embed lua/trim.lua
	trimSource string
)

var (
	moveDueScript            = redis.NewScript(moveDueSource)
	requeueScript            = redis.NewScript(requeueSource)
	poisonScript             = redis.NewScript(poisonSource)
	ackDeleteScript          = redis.NewScript(ackDeleteSource)
	claimScript              = redis.NewScript(claimSource)
	refreshInflightScript    = redis.NewScript(refreshInflightSource)
	deleteIdleConsumerScript = redis.NewScript(deleteIdleConsumerSource)
	trimScript               = redis.NewScript(trimSource)
)
