package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/redisinfo"
)

// machine describes where the numbers were measured.
type machine struct {
	NumCPU       int    `json:"nproc"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPUModel     string `json:"cpu_model"`
	OS           string `json:"os"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	RedisAddr    string `json:"redis_addr"`
	RedisLocal   bool   `json:"redis_on_loopback"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended: other work on the machine slows both sides down.
	LoadStart string `json:"load_average_start"`
	LoadEnd   string `json:"load_average_end,omitempty"`
}

func describeMachine(ctx context.Context, c redis.UniversalClient, addr string) (machine, error) {
	m := machine{
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel:   cpuModel(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion:  runtime.Version(),
		RedisAddr:  addr,
		LoadStart:  loadAverage(),
	}
	version, err := redisinfo.ServerVersion(ctx, c)
	if err != nil {
		return m, err
	}
	m.RedisVersion = version.Text
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			m.RedisLocal = ip.IsLoopback()
		} else {
			m.RedisLocal = host == "localhost"
		}
	}
	return m, nil
}

// cpuModel reads the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// loadAverage returns the 1-, 5- and 15-minute load averages from
// /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
