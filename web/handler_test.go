package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/admin"
	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/internal/redistest"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, tc := range []struct {
		name   string
		config Config
		want   string
	}{
		{"no client", Config{}, "Client"},
		{"tiny interval", Config{Client: client, SampleInterval: time.Millisecond}, "SampleInterval"},
		{"window below interval", Config{Client: client, SampleInterval: time.Minute, SampleWindow: time.Second}, "SampleWindow"},
		{"short key", Config{Client: client, CSRFKey: []byte("short")}, "CSRFKey"},
		{"negative topics", Config{Client: client, MaxSampledTopics: -1}, "MaxSampledTopics"},
	} {
		if _, err := NewHandler(tc.config, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewHandler error = %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}

// Every page answers under the mount prefix, with links that keep it.
func TestPages(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	s := c.seed
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/", []string{s.Orders, s.Payments, s.Emails, s.DeadLetters, `class="problem"`, "not reading: shipping", "poison topic",
			`href="` + mountPrefix + `/topic?name=` + q(s.Orders) + `"`, mountPrefix + "/assets/style.css"}},
		{"/?sort=lag&desc=1", []string{`aria-sort="descending"`}},
		{"/?sort=topic", []string{`aria-sort="ascending"`}},
		{"/topic?name=" + q(s.Orders), []string{"billing", "shipping", "billing-7f9c", "Published with a delay", "Retries of group",
			"payment gateway timeout after 5s", "Publish rate", "Lag per group", "No consumers", "Oldest pending"}},
		{"/topic/charts?name=" + q(s.Orders), []string{"Consume rate per group"}},
		{"/delayed?topic=" + q(s.Orders), []string{"3 waiting"}},
		{"/delayed?topic=" + q(s.Orders) + "&group=billing", []string{"4 waiting", "connection reset by peer"}},
		{"/poison?stream=" + q(s.OrdersPoison), []string{"card declined", "address validation", `name="id"`, "Requeue all"}},
		{"/poison?stream=" + q(s.OrdersPoison) + "&handler=shipping&order=oldest", []string{"carrier API", "address validation"}},
		{"/poison?stream=" + q(s.DeadLetters), []string{"ledger write conflict #2", "Poison topic"}},
		{"/message?stream=" + q(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0], []string{"Retry history", "Attempt 5", "retried after 8s",
			"redrive_retry_history", "Show payload"}},
	} {
		status, body := c.get(tc.path)
		if status != http.StatusOK {
			t.Errorf("GET %s = %d, want 200:\n%s", tc.path, status, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: page lacks %q", tc.path, w)
			}
		}
	}
	// Each of billing's two consumers holds entries, so each shows the age
	// of its oldest.
	if _, body := c.get("/topic?name=" + q(s.Orders)); strings.Count(body, `class="oldest"`) != 2 {
		t.Errorf("topic page shows the oldest pending entry of %d consumers, want 2", strings.Count(body, `class="oldest"`))
	}
	// The handler filter keeps only that handler's messages.
	if _, body := c.get("/poison?stream=" + q(s.OrdersPoison) + "&handler=shipping"); strings.Contains(body, "card declined") {
		t.Errorf("handler filter shipping shows a billing message")
	}
	// The payload shows only after the click.
	if _, body := c.get("/message?stream=" + q(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0]); strings.Contains(body, "**** 4242") {
		t.Errorf("payload shown before it was asked for")
	}
	if _, body := c.get("/message?stream=" + q(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0] + "&payload=1"); !strings.Contains(body, "**** 4242") {
		t.Errorf("payload not shown when asked for")
	}
}

// The embedded assets are served with their types, under the prefix.
func TestAssets(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	for path, typ := range map[string]string{"/assets/style.css": "text/css", "/assets/app.js": "javascript", "/assets/icon.svg": "image/svg+xml"} {
		resp, err := c.http.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), typ) {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+"/assets/app.js", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /assets/app.js = %d, want 405", resp.StatusCode)
	}
}

// The poison list pages by stream ID, newest first by default.
func TestPoisonPaging(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	stream := c.seed.DeadLetters
	for i := range poisonPageRows + 5 {
		if _, err := consoleseed.AddPoison(context.Background(), c.client, stream, consoleseed.Poison{Topic: "t", Reason: "r", LastError: "bulk-" + strings.Repeat("x", i%3)}); err != nil {
			t.Fatal(err)
		}
	}
	_, body := c.get("/poison?stream=" + q(stream))
	if n := strings.Count(body, `name="id"`); n != poisonPageRows {
		t.Fatalf("first page has %d rows, want %d", n, poisonPageRows)
	}
	i := strings.Index(body, "cursor=")
	if i < 0 {
		t.Fatal("first page has no next-page link")
	}
	cursor := body[i+len("cursor=") : i+strings.IndexByte(body[i:], '"')]
	_, body = c.get("/poison?stream=" + q(stream) + "&cursor=" + cursor)
	// 3 seeded + 5 more: the oldest 8, among them the seeded ones.
	if n := strings.Count(body, `name="id"`); n != 8 || !strings.Contains(body, "ledger write conflict #0") {
		t.Fatalf("second page has %d rows, want 8 with the oldest seeded one", n)
	}
}

// Bad input gets a clear page and a 4xx, never a 500.
func TestBadInput(t *testing.T) {
	t.Parallel()
	c := newConsole(t, func(cfg *Config) { cfg.ShowPayloads = false })
	s := c.seed
	ps := "/poison?stream=" + q(s.OrdersPoison)
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/nope", 404, "no page"},
		{"/?sort=evil", 400, "not a column"},
		{"/topic", 400, "parameter is missing"},
		{"/topic?name=" + q(s.Prefix+"missing"), 404, "There is no topic"},
		{"/topic?name=" + strings.Repeat("a", maxNameLen+1), 400, "longer than"},
		{"/topic?name=%ff", 400, "UTF-8"},
		{"/delayed?topic=" + q(s.Orders) + "&offset=-3", 400, "not a page offset"},
		{"/poison?stream=" + q(s.Orders), 404, "not a poison stream"},
		{"/poison", 400, "missing"},
		{ps + "&cursor=1-x", 400, "not a stream entry ID"},
		{ps + "&older=3y", 400, "not an age filter"},
		{ps + "&order=sideways", 400, "not an order"},
		{ps + "&reason=" + strings.Repeat("r", maxFilterLen+1), 400, "longer than"},
		{"/message?stream=" + q(s.OrdersPoison) + "&id=bogus", 400, "not a stream entry ID"},
		{"/message?stream=" + q(s.OrdersPoison) + "&id=1-1", 404, "Not found"},
		{"/message?stream=" + q(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0] + "&payload=1", 403, "Payloads are hidden"},
		{"/job?id=nope", 404, "no action"},
		{"/job/status?id=nope", 404, "no action"},
		{"/assets/nope.js", 404, ""},
		{"/topic/charts", 400, "parameter is missing"},
	} {
		status, body := c.get(tc.path)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d, want %d with %q:\n%.400s", tc.path, status, tc.status, tc.want, body)
		}
		if strings.Contains(body, "goroutine ") || strings.Contains(body, ".go:") {
			t.Errorf("GET %s shows internals:\n%s", tc.path, body)
		}
	}
	// Methods.
	if resp, _ := c.post("/", url.Values{}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", resp.StatusCode)
	}
	if status, _ := c.get("/poison/run"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /poison/run = %d, want 405", status)
	}
	// Actions with bad forms.
	token := c.token()
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"stream": {s.OrdersPoison}, "op": {"delete-all"}, "scope": {"filter"}}, "not an action"},
		{url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"everything"}}, "not a scope"},
		{url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"selected"}}, "No message is selected"},
		{url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"selected"}, "id": {"1-1", "oops"}}, "not a stream entry ID"},
		{url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"one"}, "id": {"1-1", "1-2"}}, "One message was expected"},
		{url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"selected"}, "id": manyIDs(maxSelected + 1)}, "at most"},
		{url.Values{"stream": {s.Orders}, "op": {"purge"}, "scope": {"filter"}}, "not a poison stream"},
	} {
		tc.form.Set("csrf", token)
		resp, body := c.post("/poison/preview", tc.form)
		if resp.StatusCode/100 != 4 || !strings.Contains(body, tc.want) {
			t.Errorf("POST preview %v = %d, want 4xx with %q:\n%.400s", tc.form, resp.StatusCode, tc.want, body)
		}
	}
	resp, _ := c.post("/delayed/preview", url.Values{"csrf": {token}, "topic": {s.Orders}, "scope": {"some"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delayed preview with a bad scope = %d, want 400", resp.StatusCode)
	}
	huge := url.Values{"csrf": {token}, "stream": {strings.Repeat("s", maxFormBytes)}}
	if resp, _ := c.post("/poison/preview", huge); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form = %d, want 413", resp.StatusCode)
	}
}

func manyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "1-" + strings.Repeat("1", 1+i%5)
	}
	return ids
}

// Hostile metadata, errors and payloads show as text: the page bytes hold
// them escaped, never as markup.
func TestEscaping(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	s := c.seed
	for _, path := range []string{
		"/",
		"/topic?name=" + q(s.HostileTopic),
		"/poison?stream=" + q(s.OrdersPoison),
		"/message?stream=" + q(s.OrdersPoison) + "&id=" + s.HostileID + "&payload=1",
	} {
		status, body := c.get(path)
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d", path, status)
		}
		for _, raw := range []string{"<script>window", "<img src=x", `onerror="window`} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: page holds raw %q", path, raw)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;window.__redriveXSS=1&lt;/script&gt;") && !strings.Contains(body, "&lt;img src=x") {
			t.Errorf("GET %s: the hostile text is not shown escaped", path)
		}
	}
	resp, err := c.http.Get(c.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

// Actions need the CSRF token and a same-origin request; read-only refuses
// them all, even well-formed ones.
func TestActionProtection(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	s := c.seed
	form := url.Values{"stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"one"}, "id": {s.OrdersPoisonIDs[0]}}
	if resp, body := c.post("/poison/run", form); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "security token") {
		t.Errorf("POST without token = %d, want 403 naming the token", resp.StatusCode)
	}
	form.Set("csrf", "0123")
	c.token() // sets the cookie
	if resp, _ := c.post("/poison/run", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a forged token = %d, want 403", resp.StatusCode)
	}
	form.Set("csrf", c.token())
	req, _ := http.NewRequest(http.MethodPost, c.base+"/poison/run", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST = %d, want 403", resp.StatusCode)
	}
	if n := c.client.XLen(context.Background(), s.OrdersPoison).Val(); n != int64(len(s.OrdersPoisonIDs)) {
		t.Fatalf("a refused POST changed the poison stream: %d entries", n)
	}

	ro := newConsole(t, func(cfg *Config) { cfg.ReadOnly = true })
	_, body := ro.get("/poison?stream=" + q(ro.seed.OrdersPoison))
	if strings.Contains(body, "/poison/preview") || strings.Contains(body, "Requeue") {
		t.Errorf("read-only poison page offers actions")
	}
	_, body = ro.get("/topic?name=" + q(ro.seed.Orders))
	if strings.Contains(body, "/delayed/preview") {
		t.Errorf("read-only topic page offers actions")
	}
	// A well-formed POST with a valid token is refused all the same.
	token := ro.handler.sign("x")
	ro.http.Jar.SetCookies(mustURL(ro.base+"/"), []*http.Cookie{{Name: csrfCookie, Value: "x", Path: mountPrefix + "/"}})
	for _, path := range []string{"/poison/preview", "/poison/run", "/delayed/preview", "/delayed/run"} {
		f := url.Values{"csrf": {token}, "stream": {ro.seed.OrdersPoison}, "op": {"purge"}, "scope": {"filter"}, "topic": {ro.seed.Orders}}
		if resp, body := ro.post(path, f); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "read-only") {
			t.Errorf("read-only POST %s = %d, want 403", path, resp.StatusCode)
		}
	}
	if n := ro.client.XLen(context.Background(), ro.seed.OrdersPoison).Val(); n != int64(len(ro.seed.OrdersPoisonIDs)) {
		t.Fatalf("read-only console changed the poison stream: %d entries", n)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// waitJob follows a redirect to a job page and waits until the job is done.
func (c *console) waitJob(resp *http.Response) jobView {
	c.t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("action answered %d, want 303 to its progress page", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, mountPrefix+"/job?id=") {
		c.t.Fatalf("action redirects to %q", loc)
	}
	id := strings.TrimPrefix(loc, mountPrefix+"/job?id=")
	var v jobView
	redistest.WaitFor(c.t, 30*time.Second, func() bool {
		_, body := c.get("/job/status?id=" + id)
		v = jobView{}
		_ = json.Unmarshal([]byte(body), &v)
		return v.Done
	}, "job %s did not finish", id)
	if status, body := c.get("/job?id=" + id); status != http.StatusOK || !strings.Contains(body, v.Summary) {
		c.t.Errorf("job page = %d without its summary %q", status, v.Summary)
	}
	return v
}

// preview posts an action's form to its preview and returns the page with
// the dry run: at once for a selection, after its progress page for a
// filter.
func (c *console) preview(path string, form url.Values) string {
	c.t.Helper()
	resp, body := c.post(path, form)
	if resp.StatusCode == http.StatusOK {
		return body
	}
	v := c.waitJob(resp)
	if v.Error != "" {
		c.t.Fatalf("dry run failed: %s", v.Error)
	}
	_, body = c.get("/job?id=" + v.ID)
	return body
}

// Requeue, purge and run-now: a dry run shows the count and changes
// nothing; the confirmed action runs in the background to completion.
func TestActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newConsole(t, nil)
	s := c.seed
	token := c.token()
	keys := redrive.KeysFor(s.Orders)

	// Requeue all of billing's messages (a handler filter): 4 of 6.
	form := url.Values{"csrf": {token}, "stream": {s.OrdersPoison}, "op": {"requeue"}, "scope": {"filter"}, "handler": {"billing"}}
	if body := c.preview("/poison/preview", form); !strings.Contains(body, "Would requeue 4 of 4 matching messages") || !strings.Contains(body, `id="confirm"`) {
		t.Fatalf("preview:\n%s", body)
	}
	if n := c.client.XLen(ctx, s.OrdersPoison).Val(); n != 6 {
		t.Fatalf("the dry run changed the poison stream: %d entries", n)
	}
	resp, _ := c.post("/poison/run", form)
	if v := c.waitJob(resp); v.Error != "" || v.Summary != "Requeued 4 of 4 matching messages." {
		t.Fatalf("requeue job = %+v", v)
	}
	if n := c.client.XLen(ctx, keys.GroupRetry("billing")).Val(); n != 4 {
		t.Errorf("billing's retry stream holds %d, want the 4 requeued", n)
	}

	// Purge one (a shipping message).
	one := url.Values{"csrf": {token}, "stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"one"}, "id": {s.OrdersPoisonIDs[2]}}
	if resp, body := c.post("/poison/preview", one); !strings.Contains(body, "Would purge 1 of 1") {
		t.Fatalf("purge preview = %d:\n%s", resp.StatusCode, body)
	}
	resp, _ = c.post("/poison/run", one)
	if v := c.waitJob(resp); v.Summary != "Purged 1 of 1 matching messages." {
		t.Fatalf("purge job = %+v", v)
	}
	// Purge selected, one of which is gone already.
	sel := url.Values{"csrf": {token}, "stream": {s.OrdersPoison}, "op": {"purge"}, "scope": {"selected"}, "id": {s.OrdersPoisonIDs[2], s.OrdersPoisonIDs[4]}}
	resp, _ = c.post("/poison/run", sel)
	if v := c.waitJob(resp); v.Summary != "Purged 1 of 1 matching messages, 1 not found." {
		t.Fatalf("purge selected job = %+v", v)
	}
	if n := c.client.XLen(ctx, s.OrdersPoison).Val(); n != 0 {
		t.Errorf("poison stream holds %d, want 0", n)
	}
	// The preview of a filter that matches nothing offers no confirm.
	if body := c.preview("/poison/preview", form); strings.Contains(body, `id="confirm"`) || !strings.Contains(body, "0 of 0") {
		t.Errorf("empty preview offers to confirm:\n%s", body)
	}

	// Run one delayed message now, then all of billing's retries.
	_, topicPage := c.get("/topic?name=" + q(s.Orders))
	i := strings.Index(topicPage, `name="scope" value="one"><input type="hidden" name="id" value="`)
	if i < 0 {
		t.Fatal("topic page has no run-now form")
	}
	rest := topicPage[i+len(`name="scope" value="one"><input type="hidden" name="id" value="`):]
	delayedID := rest[:strings.IndexByte(rest, '"')]
	runOne := url.Values{"csrf": {token}, "topic": {s.Orders}, "scope": {"one"}, "id": {delayedID}}
	if _, body := c.post("/delayed/preview", runOne); !strings.Contains(body, "Would move delayed message") {
		t.Fatalf("delayed preview:\n%s", body)
	}
	before := c.client.XLen(ctx, s.Orders).Val()
	resp, _ = c.post("/delayed/run", runOne)
	if v := c.waitJob(resp); v.Summary != "Moved 1 delayed messages into "+s.Orders+"." {
		t.Fatalf("run-now job = %+v", v)
	}
	if after := c.client.XLen(ctx, s.Orders).Val(); after != before+1 || c.client.ZCard(ctx, keys.Delayed).Val() != 2 {
		t.Errorf("after run-now: stream %d → %d, delayed %d", before, after, c.client.ZCard(ctx, keys.Delayed).Val())
	}
	runAll := url.Values{"csrf": {token}, "topic": {s.Orders}, "group": {"billing"}, "scope": {"all"}}
	if _, body := c.post("/delayed/preview", runAll); !strings.Contains(body, "Would move all 4 waiting messages") {
		t.Fatalf("run-all preview:\n%s", body)
	}
	resp, _ = c.post("/delayed/run", runAll)
	if v := c.waitJob(resp); v.Summary != "Moved 4 delayed messages into "+keys.GroupRetry("billing")+"." {
		t.Fatalf("run-all job = %+v", v)
	}
}

// The sampler fills the charts from XINFO, and Close stops it.
func TestSamplerCharts(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	ctx := context.Background()
	redistest.WaitFor(t, 30*time.Second, func() bool { return len(c.handler.sampler.history(c.seed.Orders)) >= 3 }, "three samples of %s", c.seed.Orders)
	c.client.XAdd(ctx, &redis.XAddArgs{Stream: c.seed.Orders, Values: map[string]any{"payload": "x"}})
	passes := c.handler.sampler.passCount()
	redistest.WaitFor(t, 30*time.Second, func() bool { return c.handler.sampler.passCount() >= passes+2 }, "two more passes")
	_, body := c.get("/topic/charts?name=" + q(c.seed.Orders))
	for _, want := range []string{"<polyline", "billing", "shipping", "Publish rate"} {
		if !strings.Contains(body, want) {
			t.Errorf("charts lack %q:\n%s", want, body)
		}
	}
	if err := c.handler.Close(); err != nil {
		t.Fatal(err)
	}
	after := c.handler.sampler.passCount()
	if err := c.handler.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Stopped: no pass starts after Close returned.
	time.Sleep(3 * c.handler.config.SampleInterval)
	if got := c.handler.sampler.passCount(); got != after {
		t.Errorf("sampler ran %d passes after Close", got-after)
	}
	// Pages still work without the sampler.
	if status, _ := c.get("/topic?name=" + q(c.seed.Orders)); status != http.StatusOK {
		t.Errorf("topic page after Close = %d", status)
	}
}

// Redis down: a clear 503, no internals.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	h, err := NewHandler(Config{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.(*Handler).Close()
	for _, path := range []string{"/", "/topic?name=x", "/poison?stream=x"} {
		rec := httptestRecorder(h, http.MethodGet, path)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "Redis did not answer") {
			t.Errorf("GET %s with Redis down = %d:\n%s", path, rec.Code, rec.Body.String())
		}
	}
}

// A bulk action runs in the background and reports its progress, batch by
// batch, to its page's status.
func TestBulkProgress(t *testing.T) {
	t.Parallel()
	c := newConsole(t, func(cfg *Config) {
		adm, err := admin.NewAdmin(admin.Config{Client: cfg.Client, BatchSize: 50}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Admin = adm
	})
	stream := c.seed.DeadLetters
	pipe := c.client.Pipeline()
	// Three chunks of poisonChunkSize, the last one partial.
	for range 2*poisonChunkSize + 497 {
		fields, _, err := consoleseed.PoisonFields(consoleseed.Poison{Topic: "t", Reason: "r"})
		if err != nil {
			t.Fatal(err)
		}
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: fields})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"csrf": {c.token()}, "stream": {stream}, "op": {"purge"}, "scope": {"filter"}}
	if body := c.preview("/poison/preview", form); !strings.Contains(body, "Would purge 2500 of 2500 matching messages.") ||
		!strings.Contains(body, "… and 2480 more.") {
		t.Fatalf("preview:\n%s", body)
	}
	resp, _ := c.post("/poison/run", form)
	v := c.waitJob(resp)
	if v.Error != "" || v.Percent != 100 || v.Progress.Total != 2500 || v.Progress.Scanned != 2500 || v.Progress.Done != 2500 {
		t.Fatalf("job = %+v", v)
	}
	if v.Summary != "Purged 2500 of 2500 matching messages." {
		t.Errorf("summary = %q", v.Summary)
	}
}

// On a Redis Cluster the pages read every master, and each topic on its own
// node.
func TestClusterPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := redistest.StartCluster(t, redistest.ClusterOptions{ReplicasPerMaster: -1})
	client := cluster.Client(t)
	s, err := consoleseed.Seed(ctx, client, "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Client: client, SampleInterval: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.(*Handler).Close()
	for path, want := range map[string]string{
		"/":                                   s.Payments,
		"/topic?name=" + q(s.Orders):          "billing-7f9c",
		"/poison?stream=" + q(s.OrdersPoison): "card declined",
		"/poison?stream=" + q(s.DeadLetters):  "ledger write conflict",
		"/message?stream=" + q(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0]: "Attempt 5",
	} {
		rec := httptestRecorder(h, http.MethodGet, path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s on a cluster = %d, want 200 with %q:\n%.600s", path, rec.Code, want, rec.Body.String())
		}
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return len(h.(*Handler).sampler.history(s.Orders)) >= 2 }, "samples of %s on the cluster", s.Orders)
}

// A bug that panics in a page shows a plain 500 page, no stack trace.
func TestPanicIsA500WithoutInternals(t *testing.T) {
	t.Parallel()
	c := newConsole(t, nil)
	c.handler.routes["/boom"] = route{method: http.MethodGet, serve: func(*Handler, http.ResponseWriter, *http.Request, page) error {
		panic("secret internal detail")
	}}
	status, body := c.get("/boom")
	if status != http.StatusInternalServerError || strings.Contains(body, "secret") || strings.Contains(body, "goroutine") {
		t.Errorf("panicking page = %d:\n%s", status, body)
	}
}

// A group that has not read entries older than the retention window holds
// them back from trimming; the topic page says so, judged against
// Config.RetainAcked.
func TestTopicPageShowsWhatAGroupHoldsBack(t *testing.T) {
	t.Parallel()
	const holdsBack = `class="holds-back"`
	long := newConsole(t, nil) // the default window: the fresh seed holds nothing back yet
	if _, body := long.get("/topic?name=" + q(long.seed.Orders)); strings.Contains(body, holdsBack) {
		t.Errorf("with the default retention window a group is shown holding entries back")
	}
	short := newConsole(t, func(c *Config) { c.RetainAcked = time.Millisecond })
	time.Sleep(5 * time.Millisecond) // every seeded entry is now past the window
	status, body := short.get("/topic?name=" + q(short.seed.Orders))
	if status != http.StatusOK {
		t.Fatalf("GET topic = %d", status)
	}
	// shipping never read the topic: it holds back every entry.
	if n := strings.Count(body, holdsBack); n < 1 {
		t.Fatalf("no group shown holding entries back with a 1ms window")
	}
	if !strings.Contains(body, "Holds back") {
		t.Errorf("topic page lacks the Holds back fact")
	}
}
