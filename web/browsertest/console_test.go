package browsertest

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/chromedp/chromedp"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/internal/redistest"
	"github.com/redrive-go/redrive/router"
	"github.com/redrive-go/redrive/web"
)

// waitTimeout bounds waits for the application's handler.
const waitTimeout = 30 * time.Second

// clickJS clicks the first element matching a CSS selector whose text is
// text (any text when empty), and reports whether it found one.
func clickJS(selector, text string) chromedp.Action[bool] {
	return chromedp.Evaluate[bool](`(() => {
		const el = [...document.querySelectorAll(` + jsString(selector) + `)].find(e => ` + jsString(text) + ` === "" || e.textContent.trim() === ` + jsString(text) + `);
		if (!el) return false;
		el.click();
		return true;
	})()`)
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}

func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	do(t, ctx, "wait for "+selector, chromedp.WaitVisible(chromedp.CSS(selector)))
	return get(t, ctx, "read "+selector, chromedp.Text(chromedp.CSS(selector)))
}

func click(t *testing.T, ctx context.Context, selector, label string) {
	t.Helper()
	if !get(t, ctx, "click "+selector, clickJS(selector, label)) {
		t.Fatalf("no %s %q on the page", selector, label)
	}
}

// An operator's round: the overview, a topic, a poisoned message requeued
// (and handled by the application), another purged, a delayed message run
// now, all through the browser.
func TestOperatorFlow(t *testing.T) {
	ctx := newBrowser(t)
	client := redistest.NewClient(t)
	s := seed(t, client, redistest.RandomTopic("browser-")+".")
	c := serve(t, web.Config{Client: client, TopicMatch: s.Prefix + "*", SampleInterval: 200 * time.Millisecond})

	// The application: billing handles orders, and now succeeds.
	var mu sync.Mutex
	handled := map[string]bool{}
	r, err := router.New(router.Config{Client: client}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddConsumerHandler("billing", s.Orders, func(msg *message.Message) error {
		mu.Lock()
		handled[msg.UUID] = true
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- r.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		_ = r.Close()
		<-runDone
	})
	<-r.Running()

	// Overview: orders stands out.
	do(t, ctx, "open overview", chromedp.Navigate(c.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#topics")))
	problems := get(t, ctx, "problem rows", chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr.problem td.name a")].map(a => a.textContent)`))
	if !contains(problems, s.Orders) || !contains(problems, s.DeadLetters) {
		t.Fatalf("problem rows = %q, want %s and %s", problems, s.Orders, s.DeadLetters)
	}

	// Topic page.
	click(t, ctx, "td.name a", s.Orders)
	if h := text(t, ctx, "h1"); h != s.Orders {
		t.Fatalf("topic page title = %q", h)
	}
	if groups := get(t, ctx, "groups", chromedp.Evaluate[[]string](`[...document.querySelectorAll(".group h3")].map(h => h.textContent)`)); !contains(groups, "billing") || !contains(groups, "shipping") {
		t.Fatalf("groups = %q", groups)
	}

	// Poison list, then the first message.
	click(t, ctx, "a.card", "")
	do(t, ctx, "poison list", chromedp.WaitVisible(chromedp.CSS("#selection")))
	click(t, ctx, `a[href*="id=`+s.OrdersPoisonIDs[0]+`"]`, "")
	if tl := text(t, ctx, "ol.timeline"); !strings.Contains(tl, "Attempt 5") || !strings.Contains(tl, "card declined") {
		t.Fatalf("timeline = %q", tl)
	}

	// Requeue it: the dry run shows one, the confirm does it, and billing
	// handles it.
	confirmAction(t, ctx, `button[value="requeue"]`, "Would requeue 1 of 1", "Requeued 1 of 1 matching messages.")
	uuid := s.OrdersPoisonUUIDs[0]
	redistest.WaitFor(t, waitTimeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled[uuid]
	}, "billing to handle the requeued message %s", uuid)

	// Purge another.
	do(t, ctx, "open message 2", chromedp.Navigate(c.URL+"/message?stream="+url.QueryEscape(s.OrdersPoison)+"&id="+s.OrdersPoisonIDs[1]),
		chromedp.WaitVisible(chromedp.CSS(".timeline")))
	confirmAction(t, ctx, `button[value="purge"]`, "Would purge 1 of 1", "Purged 1 of 1 matching messages.")
	if left := client.XRange(context.Background(), s.OrdersPoison, s.OrdersPoisonIDs[1], s.OrdersPoisonIDs[1]).Val(); len(left) != 0 {
		t.Fatalf("purged entry still there")
	}

	// Purge all of shipping's messages through a filter: the dry run runs
	// in the background and its page offers the confirm.
	do(t, ctx, "filter poison list", chromedp.Navigate(c.URL+"/poison?stream="+url.QueryEscape(s.OrdersPoison)+"&handler=shipping"),
		chromedp.WaitVisible(chromedp.CSS("form.bulk")))
	confirmAction(t, ctx, `form.bulk button[value="purge"]`, "Would purge 2 of 2", "Purged 2 of 2 matching messages.")
	if n := client.XLen(context.Background(), s.OrdersPoison).Val(); n != 2 {
		t.Fatalf("poison stream holds %d, want 2 (6 less one requeued, one and two purged)", n)
	}

	// Run a delayed message now.
	delayed := redrive.KeysFor(s.Orders).Delayed
	do(t, ctx, "open topic", chromedp.Navigate(c.URL+"/topic?name="+url.QueryEscape(s.Orders)), chromedp.WaitVisible(chromedp.CSS(".delayed-set")))
	confirmAction(t, ctx, ".delayed-set td.actions button", "Would move delayed message", "Moved 1 delayed messages into "+s.Orders+".")
	if n := client.ZCard(context.Background(), delayed).Val(); n != 2 {
		t.Fatalf("delayed set holds %d, want 2", n)
	}
}

// confirmAction clicks an action's button, checks its dry run, confirms,
// and checks the result its progress page ends with.
func confirmAction(t *testing.T, ctx context.Context, button, wantPreview, wantResult string) {
	t.Helper()
	click(t, ctx, button, "")
	if sum := text(t, ctx, "#preview-summary"); !strings.Contains(sum, wantPreview) {
		t.Fatalf("%s: preview = %q, want %q", button, sum, wantPreview)
	}
	click(t, ctx, "#confirm", "")
	if sum := text(t, ctx, "#job-summary"); sum != wantResult {
		t.Fatalf("%s: result = %q, want %q", button, sum, wantResult)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// postFromPage posts a form from inside the console's page (same origin,
// with its cookies), as a script an attacker got onto the page, or an
// operator with devtools, would; it returns the status.
func postFromPage(t *testing.T, ctx context.Context, path string, form map[string]string) int {
	t.Helper()
	var fields []string
	for k, v := range form {
		fields = append(fields, jsString(k)+": "+jsString(v))
	}
	return get(t, ctx, "POST "+path, chromedp.Evaluate[int](`fetch(document.body.dataset.base + `+jsString(path)+`, {
		method: "POST", credentials: "same-origin",
		headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: new URLSearchParams({`+strings.Join(fields, ", ")+`}).toString(),
	}).then(r => r.status)`, chromedp.EvalAwaitPromise))
}

// Read-only: no action on any page, and a hand-made POST (with a valid
// token) is refused.
func TestReadOnly(t *testing.T) {
	ctx := newBrowser(t)
	client := redistest.NewClient(t)
	s := seed(t, client, redistest.RandomTopic("browser-ro-")+".")
	key := []byte("0123456789abcdef0123456789abcdef")
	c := serve(t, web.Config{Client: client, TopicMatch: s.Prefix + "*", ReadOnly: true, CSRFKey: key})
	for _, path := range []string{
		"/poison?stream=" + url.QueryEscape(s.OrdersPoison),
		"/message?stream=" + url.QueryEscape(s.OrdersPoison) + "&id=" + s.OrdersPoisonIDs[0],
		"/topic?name=" + url.QueryEscape(s.Orders),
	} {
		do(t, ctx, "open "+path, chromedp.Navigate(c.URL+path), chromedp.WaitVisible(chromedp.CSS("main")))
		if n := get(t, ctx, "count forms", chromedp.Evaluate[int](`document.querySelectorAll('form[method="post"], button[name="op"]').length`)); n != 0 {
			t.Errorf("%s: %d action forms or buttons in read-only mode", path, n)
		}
	}
	for _, path := range []string{"/poison/run", "/poison/preview", "/delayed/run"} {
		status := postFromPage(t, ctx, path, map[string]string{"stream": s.OrdersPoison, "op": "purge", "scope": "filter", "topic": s.Orders})
		if status != 403 {
			t.Errorf("read-only POST %s = %d, want 403", path, status)
		}
	}
	if n := client.XLen(context.Background(), s.OrdersPoison).Val(); n != int64(len(s.OrdersPoisonIDs)) {
		t.Fatalf("read-only console changed the poison stream: %d entries", n)
	}
}

// A POST without the CSRF token is refused, even from the console's own
// origin.
func TestCSRFRequired(t *testing.T) {
	ctx := newBrowser(t)
	client := redistest.NewClient(t)
	s := seed(t, client, redistest.RandomTopic("browser-csrf-")+".")
	c := serve(t, web.Config{Client: client, TopicMatch: s.Prefix + "*"})
	do(t, ctx, "open poison list", chromedp.Navigate(c.URL+"/poison?stream="+url.QueryEscape(s.OrdersPoison)), chromedp.WaitVisible(chromedp.CSS("#selection")))
	form := map[string]string{"stream": s.OrdersPoison, "op": "purge", "scope": "filter"}
	if status := postFromPage(t, ctx, "/poison/run", form); status != 403 {
		t.Errorf("POST without token = %d, want 403", status)
	}
	form["csrf"] = strings.Repeat("0", 64)
	if status := postFromPage(t, ctx, "/poison/run", form); status != 403 {
		t.Errorf("POST with a wrong token = %d, want 403", status)
	}
	if n := client.XLen(context.Background(), s.OrdersPoison).Val(); n != int64(len(s.OrdersPoisonIDs)) {
		t.Fatalf("a refused POST changed the poison stream: %d entries", n)
	}
	// With the page's own token the same POST works: the refusals above
	// were for the token alone.
	token := get(t, ctx, "token", chromedp.Evaluate[string](`document.querySelector('input[name="csrf"]').value`))
	form["csrf"] = token
	if status := postFromPage(t, ctx, "/poison/preview", form); status != 200 {
		t.Errorf("POST with the page's token = %d, want 200", status)
	}
}

// Hostile payload, metadata, reason and error show as text and run
// nothing.
func TestHostileContentIsText(t *testing.T) {
	ctx := newBrowser(t)
	client := redistest.NewClient(t)
	s := seed(t, client, redistest.RandomTopic("browser-xss-")+".")
	c := serve(t, web.Config{Client: client, TopicMatch: s.Prefix + "*", ShowPayloads: true})
	noScriptRan := func(where string) {
		t.Helper()
		ran := get(t, ctx, "check "+where, chromedp.Evaluate[bool](`window.__redriveXSS !== undefined || document.querySelectorAll("img").length > 0 ||
			[...document.scripts].some(s => !s.src.endsWith("/assets/app.js"))`))
		if ran {
			t.Errorf("%s: hostile markup became part of the page", where)
		}
	}
	do(t, ctx, "poison list", chromedp.Navigate(c.URL+"/poison?stream="+url.QueryEscape(s.OrdersPoison)), chromedp.WaitVisible(chromedp.CSS("#selection")))
	noScriptRan("poison list")
	if body := text(t, ctx, "table.poison"); !strings.Contains(body, consoleseed.ScriptXSS) {
		t.Errorf("poison list does not show the hostile error as text")
	}
	do(t, ctx, "message", chromedp.Navigate(c.URL+"/message?stream="+url.QueryEscape(s.OrdersPoison)+"&id="+s.HostileID),
		chromedp.WaitVisible(chromedp.CSS("#show-payload")))
	noScriptRan("message page")
	click(t, ctx, "#show-payload", "")
	if payload := text(t, ctx, "#payload"); payload != consoleseed.ScriptXSS+consoleseed.ImgXSS {
		t.Errorf("payload shows as %q", payload)
	}
	noScriptRan("message page with payload")
	meta := text(t, ctx, "table.kv")
	for _, want := range []string{"note", consoleseed.ScriptXSS, "x" + consoleseed.ImgXSS} {
		if !strings.Contains(meta, want) {
			t.Errorf("metadata does not show %q as text", want)
		}
	}
	do(t, ctx, "overview", chromedp.Navigate(c.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#topics")))
	noScriptRan("overview")
	if names := get(t, ctx, "topic names", chromedp.Evaluate[[]string](`[...document.querySelectorAll("td.name a")].map(a => a.textContent)`)); !contains(names, s.HostileTopic) {
		t.Errorf("overview does not show the hostile topic name as text: %q", names)
	}
	click(t, ctx, "td.name a", s.HostileTopic)
	if h := text(t, ctx, "h1"); h != s.HostileTopic {
		t.Errorf("hostile topic page title = %q", h)
	}
	if g := text(t, ctx, ".group h3"); g != consoleseed.ScriptXSS {
		t.Errorf("hostile group shows as %q", g)
	}
	noScriptRan("hostile topic page")
}
