package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/admin"
)

func TestNewClient(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		cluster bool
		addrs   []string
		tls     bool
		user    string
	}{
		{spec: "127.0.0.1:7000", addrs: []string{"127.0.0.1:7000"}},
		{spec: "redis-host", addrs: []string{"redis-host:6379"}},
		{spec: "redis://u:p@h:6380/2", addrs: []string{"h:6380"}, user: "u"},
		{spec: "rediss://u:p@h:6380", addrs: []string{"h:6380"}, tls: true, user: "u"},
		{spec: "h1:7000,h2:7001", cluster: true, addrs: []string{"h1:7000", "h2:7001"}},
		{spec: "rediss://u:p@h1:7000,h2:7001", cluster: true, addrs: []string{"h1:7000", "h2:7001"}, tls: true, user: "u"},
		{spec: "redis://h1:7000?addr=h2:7001", cluster: true, addrs: []string{"h1:7000", "h2:7001"}},
	} {
		c, err := newClient(tc.spec, false)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		switch c := c.(type) {
		case *redis.Client:
			o := c.Options()
			if tc.cluster || o.Addr != tc.addrs[0] || (o.TLSConfig != nil) != tc.tls || o.Username != tc.user {
				t.Errorf("%s: client for %s, tls %v, user %q", tc.spec, o.Addr, o.TLSConfig != nil, o.Username)
			}
		case *redis.ClusterClient:
			o := c.Options()
			if !tc.cluster || strings.Join(o.Addrs, ",") != strings.Join(tc.addrs, ",") || (o.TLSConfig != nil) != tc.tls || o.Username != tc.user {
				t.Errorf("%s: cluster client for %v, tls %v, user %q", tc.spec, o.Addrs, o.TLSConfig != nil, o.Username)
			}
		}
		_ = c.Close()
	}
	for _, bad := range []string{"", "http://h", "redis://h:notaport", "h1:1,h2:x:y"} {
		if c, err := newClient(bad, false); err == nil {
			_ = c.Close()
			t.Errorf("%q: no error", bad)
		}
	}
	if c, err := newClient("h:1", true); err != nil {
		t.Error(err)
	} else if _, ok := c.(*redis.ClusterClient); !ok {
		t.Errorf("--cluster gave %T", c)
	}
}

func TestRedact(t *testing.T) {
	got := redact(`parse "redis://bob:s3cr@t@h:1": bad, rediss://:pw@h2`)
	if strings.Contains(got, "s3cr") || strings.Contains(got, "pw@") || !strings.Contains(got, "redis://bob:xxxxx@") {
		t.Errorf("redact = %q", got)
	}
}

func TestAgeFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "2w": 14 * 24 * time.Hour, "0.5d": 12 * time.Hour} {
		var v ageValue
		if err := v.Set(in); err != nil || time.Duration(v) != want {
			t.Errorf("%s = %v, %v; want %v", in, time.Duration(v), err, want)
		}
	}
	for _, bad := range []string{"", "7x", "-1h", "0s", "d"} {
		var v ageValue
		if err := v.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	a := &app{stderr: &buf, stderrIsTerm: false}
	p := a.progress("requeued")
	p.update(admin.Progress{Total: 10, Scanned: 5, Done: 5})
	p.done()
	if buf.Len() != 0 {
		t.Errorf("progress drawn without a terminal: %q", buf.String())
	}
	a.stderrIsTerm = true
	p = a.progress("requeued")
	p.update(admin.Progress{Total: 200, Scanned: 100, Done: 90, Skipped: 10})
	p.done()
	if out := buf.String(); !strings.Contains(out, " 50%") || !strings.Contains(out, "100/200 scanned, 90 requeued, 10 skipped") || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("progress = %q", out)
	}
	buf.Reset()
	a.json = true
	p = a.progress("requeued")
	p.update(admin.Progress{Total: 1, Scanned: 1})
	if buf.Len() != 0 {
		t.Errorf("progress drawn with --json: %q", buf.String())
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond:                    "850ms",
		4200 * time.Millisecond:                   "4.2s",
		time.Hour:                                 "1h",
		3*time.Minute + 12*time.Second:            "3m12s",
		2*time.Hour + 5*time.Minute + time.Second: "2h5m",
		76 * time.Hour:                            "3d4h",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%v) = %q, want %q", d, got, want)
		}
	}
}
