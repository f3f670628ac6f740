// Package browsertest drives the redrive web console in headless Chromium
// (Debian's chromium package) with chromedp. It is a module of its own so
// that chromedp never enters the library's go.mod. Run it from this
// directory:
//
//	go test -race -count=1 ./...
//
// The tests skip when no Chromium is installed (CHROMIUM_PATH, else
// chromium or chromium-browser on PATH) unless REDRIVE_REQUIRE_BROWSER=1,
// as CI sets it, turns the skip into a failure.
package browsertest
