// Package web is redrive's web console: an http.Handler that shows every
// topic, consumer group, delayed message, waiting retry and poisoned
// message in Redis, and requeues, purges and runs them now with the same
// atomic operations as package admin and the redrive CLI.
//
// # Mounting
//
// NewHandler returns the console; mount it under any prefix of the
// application's own mux with http.StripPrefix, behind the application's
// authentication (the console has none of its own):
//
//	console, err := web.NewHandler(web.Config{Client: rdb}, logger)
//	mux.Handle("/redrive/", auth(http.StripPrefix("/redrive", console)))
//	defer console.(io.Closer).Close()
//
// The handler keeps no global state; two consoles may run in one process.
// Its pages are drawn with html/template from templates and assets embedded
// with go:embed, and load nothing from anywhere else.
//
// # Pages
//
//	/                       every topic (admin.ListTopics), sortable; problems first
//	/topic?name=T           groups, consumers, delayed messages, waiting retries, charts
//	/delayed?topic=T&group=G  a delayed set, page by page
//	/poison?stream=S        a poison stream, paged by entry ID, with filters
//	/message?stream=S&id=I  one poisoned message: metadata, retry history, payload on request
//	/job?id=J               progress and result of a background action
//
// # Actions
//
// Requeue and purge (one message, a selection, or every message matching a
// filter) and run-now of delayed messages are POST forms. Each first shows
// a dry run with the count, then runs in the background (a filter in chunks
// of 1,000 messages, so memory stays bounded) with a progress page. Every
// POST must carry the form's CSRF token and come from the console's own
// origin; Config.ReadOnly refuses every POST on the server and draws no
// buttons.
//
// # Charts
//
// The handler owns one background goroutine, the sampler: every
// Config.SampleInterval it reads XINFO STREAM and XINFO GROUPS of the topics
// (up to Config.MaxSampledTopics, plus any topic whose page was opened) and
// keeps Config.SampleWindow of readings in memory for the charts of publish
// rate, consume rate per group and lag, drawn as inline SVG. Close stops it,
// and cancels running actions.
package web
