package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/internal/redistest"
)

// console is a console under test, mounted under /ops/redrive in a mux as
// an application would mount it.
type console struct {
	t       *testing.T
	client  *redis.Client
	handler *Handler
	server  *httptest.Server
	http    *http.Client
	seed    consoleseed.Seeded
	base    string
}

const mountPrefix = "/ops/redrive"

func newConsole(t *testing.T, mutate func(*Config)) *console {
	t.Helper()
	client := redistest.NewClient(t)
	prefix := redistest.RandomTopic("web-") + "."
	seed, err := consoleseed.Seed(context.Background(), client, prefix)
	t.Cleanup(func() { consoleseed.Cleanup(context.Background(), client, seed) })
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	cfg := Config{Client: client, TopicMatch: prefix + "*", SampleInterval: 50 * time.Millisecond, ShowPayloads: true}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg, nil)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	t.Cleanup(func() { _ = h.(*Handler).Close() })
	mux := http.NewServeMux()
	mux.Handle(mountPrefix+"/", http.StripPrefix(mountPrefix, h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &console{t: t, client: client, handler: h.(*Handler), server: srv, http: c, seed: seed, base: srv.URL + mountPrefix}
}

// get fetches path (relative to the mount) and returns status and body.
func (c *console) get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post submits a form as the console's own page would (same origin).
func (c *console) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.server.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// token loads a page and returns its CSRF token (setting the cookie).
func (c *console) token() string {
	c.t.Helper()
	_, body := c.get("/poison?stream=" + url.QueryEscape(c.seed.OrdersPoison))
	m := csrfPattern.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF token on the poison page")
	}
	return m[1]
}

func q(s string) string { return url.QueryEscape(s) }

func httptestRecorder(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}
