// Package browsertest drives the redrive web console in headless Chromium
// (Debian's chromium package) with chromedp. It is a module of its own so
// that chromedp never enters the library's go.mod. Run it from this
// directory:
//
//	go test -race -count=1 ./...
//
// The tests need a Chromium (CHROMIUM_PATH, else chromium, chromium-browser
// or google-chrome on PATH) and fail, naming what to install, without one.
package browsertest
