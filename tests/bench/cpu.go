package main

import (
	"context"
	"fmt"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"

	"github.com/redrive-go/redrive/internal/redisinfo"
)

// cpuSample is the CPU time used so far by this process and by the Redis
// server. On a busy machine msg/s swings with what else runs, while CPU time
// per message stays close to the cost of the work itself, so the report
// shows both.
type cpuSample struct {
	process  time.Duration
	server   time.Duration
	serverOK bool
	// gcCycles and gcCPU are this process's garbage collections so far and
	// the CPU time they took (runtime/metrics' estimate).
	gcCycles uint64
	gcCPU    time.Duration
}

func (b *bench) sampleCPU(ctx context.Context) cpuSample {
	s := sampleProcessCPU()
	if info, err := b.setup.Info(ctx, "cpu").Result(); err == nil {
		user, err1 := strconv.ParseFloat(redisinfo.Field(info, "used_cpu_user"), 64)
		sys, err2 := strconv.ParseFloat(redisinfo.Field(info, "used_cpu_sys"), 64)
		if err1 == nil && err2 == nil {
			s.server = time.Duration((user + sys) * float64(time.Second))
			s.serverOK = true
		}
	}
	return s
}

// sampleProcessCPU samples this process only.
func sampleProcessCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gc)
	if gc[0].Value.Kind() == metrics.KindUint64 {
		s.gcCycles = gc[0].Value.Uint64()
	}
	if gc[1].Value.Kind() == metrics.KindFloat64 {
		s.gcCPU = time.Duration(gc[1].Value.Float64() * float64(time.Second))
	}
	return s
}

// gcSummary says how much garbage collection n messages cost between two
// samples: with little live heap, allocation volume sets how often it runs.
func gcSummary(before, after cpuSample, n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("GC: %d cycles, %.1f µs CPU per msg (in the process figure)",
		after.gcCycles-before.gcCycles, float64(after.gcCPU-before.gcCPU)/float64(time.Microsecond)/float64(n))
}

// setCPU records on r the CPU microseconds per message between two samples.
// The process figure covers everything this process ran (both Pub/Sub
// libraries are never active at once); the server figure is server-wide, so
// other clients of a shared server add to it.
func (r *sideRun) setCPU(before, after cpuSample) {
	if r.Done == 0 {
		return
	}
	r.ProcessCPUPerMsgUs = float64(after.process-before.process) / float64(time.Microsecond) / float64(r.Done)
	if before.serverOK && after.serverOK {
		r.ServerCPUPerMsgUs = float64(after.server-before.server) / float64(time.Microsecond) / float64(r.Done)
	}
}
