// Package redistest runs Redis for tests: a client for the shared server, and
// throwaway redis-server processes, clusters and fault-injecting TCP proxies
// owned by a single test.
//
// Everything a helper starts is tied to the testing.TB it was given and is
// stopped in that test's Cleanup, so tests never have to remember to tear
// anything down. Helpers only ever signal processes they started themselves,
// by their own pid; the shared server at Addr is never stopped or flushed.
//
// Methods that take no testing.TB report failures through the TB given to the
// constructor, so, like t.Fatal, they must be called from the test's own
// goroutine.
package redistest
