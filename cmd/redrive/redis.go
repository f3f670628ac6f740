package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultRedis is used when neither --redis, REDIS_URL nor REDIS_ADDR is
// set, as redis-cli does.
const defaultRedis = "127.0.0.1:6379"

// redisSpec picks the Redis to use: the --redis flag, else $REDIS_URL, else
// $REDIS_ADDR (what redrive's examples and tests read), else defaultRedis.
func redisSpec(flagValue string, getenv func(string) string) string {
	for _, spec := range []string{flagValue, getenv("REDIS_URL"), getenv("REDIS_ADDR")} {
		if strings.TrimSpace(spec) != "" {
			return spec
		}
	}
	return defaultRedis
}

// pingTimeout bounds the first PING, so an unreachable Redis fails fast with
// a clear message instead of hanging.
const pingTimeout = 5 * time.Second

// connect connects to the Redis of --redis, else $REDIS_URL, else
// $REDIS_ADDR, else defaultRedis.
func (a *app) connect(ctx context.Context) (redis.UniversalClient, error) {
	return connect(ctx, redisSpec(a.redisSpec, a.getenv), a.cluster)
}

// connect makes a client from spec and checks that Redis answers. spec is
//
//	host:port                          one server
//	redis://[user:password@]host:port[/db]   one server (rediss:// for TLS)
//	host1:port1,host2:port2,...        Redis Cluster seeds
//	redis://[user:password@]host1:port1,host2:port2   cluster seeds with credentials
//	redis://host:port?addr=host2:port2 cluster seeds, as redis.ParseClusterURL reads them
//
// and cluster forces a cluster client for a single seed.
func connect(ctx context.Context, spec string, cluster bool) (redis.UniversalClient, error) {
	client, err := newClient(spec, cluster)
	if err != nil {
		// A wrong address is a wrong command line (or REDIS_URL).
		return nil, usagef("", "bad Redis address %q: %s", redact(spec), redact(err.Error()))
	}
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %s", redact(spec), redact(err.Error()))
	}
	return client, nil
}

func newClient(spec string, cluster bool) (redis.UniversalClient, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty address")
	}
	scheme, hasScheme := schemeOf(spec)
	if hasScheme && scheme != "redis" && scheme != "rediss" && scheme != "unix" {
		return nil, fmt.Errorf("unknown scheme %q: use redis://, rediss:// or host:port", scheme)
	}
	seeds := strings.Split(spec, ",")
	if len(seeds) > 1 || cluster || (hasScheme && strings.Contains(spec, "addr=")) {
		return newClusterClient(seeds)
	}
	if !hasScheme {
		addr, err := hostPort(spec)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(&redis.Options{Addr: addr}), nil
	}
	opts, err := redis.ParseURL(spec)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

// newClusterClient builds a cluster client from seeds. The first seed may be
// a URL carrying the scheme (TLS), credentials and options for all; the others
// are host:port (or URLs, of which only the host counts).
func newClusterClient(seeds []string) (redis.UniversalClient, error) {
	first := strings.TrimSpace(seeds[0])
	var opts *redis.ClusterOptions
	if _, ok := schemeOf(first); ok {
		var err error
		if opts, err = redis.ParseClusterURL(first); err != nil {
			return nil, err
		}
	} else {
		addr, err := hostPort(first)
		if err != nil {
			return nil, err
		}
		opts = &redis.ClusterOptions{Addrs: []string{addr}}
	}
	for _, seed := range seeds[1:] {
		seed = strings.TrimSpace(seed)
		if seed == "" {
			continue
		}
		if _, ok := schemeOf(seed); ok {
			u, err := url.Parse(seed)
			if err != nil {
				return nil, err
			}
			seed = u.Host
		}
		addr, err := hostPort(seed)
		if err != nil {
			return nil, err
		}
		opts.Addrs = append(opts.Addrs, addr)
	}
	return redis.NewClusterClient(opts), nil
}

// schemeOf returns the URL scheme of s, if s starts with one.
func schemeOf(s string) (string, bool) {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || strings.ContainsAny(scheme, "/:@") {
		return "", false
	}
	return strings.ToLower(scheme), true
}

// hostPort checks host:port, adding the default port to a bare host.
func hostPort(s string) (string, error) {
	if !strings.Contains(s, ":") || (strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")) {
		return net.JoinHostPort(strings.Trim(s, "[]"), "6379"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if port == "" {
		port = "6379"
	}
	return net.JoinHostPort(host, port), nil
}

// userinfoPassword matches the password of a URL's userinfo.
var userinfoPassword = regexp.MustCompile(`(://[^:/@\s]*:)([^@\s]*)(@)`)

// redact hides the passwords of Redis URLs in s (an address, or an error
// that quotes one), so they do not end up in logs or terminals.
func redact(s string) string {
	return userinfoPassword.ReplaceAllString(s, "${1}xxxxx${3}")
}
