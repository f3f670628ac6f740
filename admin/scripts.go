package admin

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// Each script lives in lua/ with a header naming its KEYS and ARGV. Every key
// a script touches is passed in KEYS, so the scripts work on Redis Cluster.
var (
	//go:embed lua/requeue.lua
	requeueSource string
	//go:embed lua/requeue_marked.lua
	requeueMarkedSource string
	//go:embed lua/run_now.lua
	runNowSource string
)

var (
	requeueScript       = redis.NewScript(requeueSource)
	requeueMarkedScript = redis.NewScript(requeueMarkedSource)
	runNowScript        = redis.NewScript(runNowSource)
)
