package browsertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive/internal/consoleseed"
	"github.com/redrive-go/redrive/web"
)

// mountPrefix is where the tests mount the console, as an application
// would, to check that every link and form keeps the prefix.
const mountPrefix = "/ops/redrive"

// pageTimeout bounds each browser step; a passing step takes well under a
// second even on the shared CI machine.
const pageTimeout = 60 * time.Second

// chromiumPath finds Debian's headless Chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	// A missing browser fails rather than skips: a skipped browser test
	// would hide that the console went untested.
	t.Fatal("no Chromium found: install it (Debian: apt-get install chromium chromium-driver; scripts/test does when run as root) or set CHROMIUM_PATH")
	return ""
}

// newBrowser starts a headless Chromium for one test and returns a tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a timeout, failing the test on error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, pageTimeout)
	defer cancel()
	if err := chromedp.Do(stepCtx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, pageTimeout)
	defer cancel()
	v, err := chromedp.Run(stepCtx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// colorScheme makes the page prefer a light or dark color scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// served is a console mounted in an application's mux.
type served struct {
	URL     string // the console's root, with the prefix
	Origin  string
	Handler http.Handler
}

func serve(t *testing.T, config web.Config) served {
	t.Helper()
	h, err := web.NewHandler(config, nil)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	t.Cleanup(func() { _ = h.(*web.Handler).Close() })
	mux := http.NewServeMux()
	mux.Handle(mountPrefix+"/", http.StripPrefix(mountPrefix, h))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("the application")) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return served{URL: srv.URL + mountPrefix, Origin: srv.URL, Handler: h}
}

func seed(t *testing.T, client redis.UniversalClient, prefix string) consoleseed.Seeded {
	t.Helper()
	s, err := consoleseed.Seed(context.Background(), client, prefix)
	t.Cleanup(func() { consoleseed.Cleanup(context.Background(), client, s) })
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return s
}
