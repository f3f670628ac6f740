package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/redrive-go/redrive/admin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// maxFormBytes bounds a POST body; the largest form, a selection of
// maxSelected IDs, is far smaller.
const maxFormBytes = 256 << 10

// Handler serves the console. It is an http.Handler; NewHandler returns
// one. Its background sampler and any running bulk actions belong to it:
// Close stops them.
type Handler struct {
	config      Config
	admin       *admin.Admin
	logger      watermill.LoggerAdapter
	pages       map[string]*template.Template
	assets      http.Handler
	csrfKey     []byte
	crossOrigin *http.CrossOriginProtection
	sampler     *sampler
	jobs        *jobs
	routes      map[string]route
	closeOnce   sync.Once
}

// route is one page or action.
type route struct {
	method string
	// action marks a route that changes something: refused in read-only
	// mode and checked for CSRF.
	action bool
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request, p page) error
}

// NewHandler returns the console as an http.Handler, to mount in the
// application's own mux under any prefix with http.StripPrefix:
//
//	console, err := web.NewHandler(web.Config{Client: rdb}, logger)
//	mux.Handle("/redrive/", http.StripPrefix("/redrive", console))
//	defer console.(io.Closer).Close()
//
// The handler has no authentication of its own: put the application's auth
// middleware in front of it. It starts a background sampler for the topic
// charts at once; the returned value is a *Handler whose Close stops it.
func NewHandler(config Config, logger watermill.LoggerAdapter) (http.Handler, error) {
	config.setDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	logger = logger.With(watermill.LogFields{"component": "redrive_web"})
	adm := config.Admin
	if adm == nil {
		var err error
		if adm, err = admin.NewAdmin(admin.Config{Client: config.Client}, logger); err != nil {
			return nil, err
		}
	}
	key := config.CSRFKey
	if key == nil {
		var err error
		if key, err = newCSRFKey(); err != nil {
			return nil, fmt.Errorf("redrive/web: make CSRF key: %w", err)
		}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assetFS, "assets")
	if err != nil {
		return nil, err
	}
	h := &Handler{
		config:      config,
		admin:       adm,
		logger:      logger,
		pages:       pages,
		assets:      http.FileServerFS(static),
		csrfKey:     key,
		crossOrigin: http.NewCrossOriginProtection(),
		jobs:        newJobs(config.ActionTimeout),
		routes:      routes(),
	}
	h.sampler = newSampler(config, adm, logger)
	h.sampler.Start(context.Background())
	return h, nil
}

// Close stops the chart sampler and cancels running bulk actions, waiting
// for them to return. Pages keep working without charts. It never closes
// Config.Client, and may be called more than once.
func (h *Handler) Close() error {
	h.closeOnce.Do(func() {
		h.sampler.Stop()
		h.jobs.close()
	})
	return nil
}

func routes() map[string]route {
	return map[string]route{
		"/":                {method: http.MethodGet, serve: (*Handler).overview},
		"/topic":           {method: http.MethodGet, serve: (*Handler).topic},
		"/topic/charts":    {method: http.MethodGet, serve: (*Handler).topicCharts},
		"/delayed":         {method: http.MethodGet, serve: (*Handler).delayedList},
		"/poison":          {method: http.MethodGet, serve: (*Handler).poisonList},
		"/message":         {method: http.MethodGet, serve: (*Handler).message},
		"/job":             {method: http.MethodGet, serve: (*Handler).jobPage},
		"/job/status":      {method: http.MethodGet, serve: (*Handler).jobStatus},
		"/poison/preview":  {method: http.MethodPost, action: true, serve: (*Handler).poisonPreview},
		"/poison/run":      {method: http.MethodPost, action: true, serve: (*Handler).poisonRun},
		"/delayed/preview": {method: http.MethodPost, action: true, serve: (*Handler).delayedPreview},
		"/delayed/run":     {method: http.MethodPost, action: true, serve: (*Handler).delayedRun},
	}
}

// page is what every template receives besides its own data.
type page struct {
	// Base is the prefix the console is mounted under ("" at the root).
	Base         string
	CSRF         string
	ReadOnly     bool
	ShowPayloads bool
	Now          time.Time
	Title        string
	Nav          string
	// Data is the page's own data.
	Data any
}

// ServeHTTP serves a page, an action or an asset.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	base := basePath(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.logger.Error("Console page panicked", fmt.Errorf("%v", v), watermill.LogFields{"path": r.URL.Path})
			h.renderError(w, r, page{Base: base, Now: time.Now()}, http.StatusInternalServerError, "Something went wrong while drawing this page. The details are in the server log.")
		}
	}()
	if strings.HasPrefix(r.URL.Path, "/assets/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.renderError(w, r, page{Base: base, Now: time.Now()}, http.StatusMethodNotAllowed, "Assets are read with GET.")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		http.StripPrefix("/assets", h.assets).ServeHTTP(w, r)
		return
	}
	p := page{Base: base, ReadOnly: h.config.ReadOnly, ShowPayloads: h.config.ShowPayloads, Now: time.Now()}
	rt, ok := h.routes[r.URL.Path]
	if !ok {
		h.renderError(w, r, p, http.StatusNotFound, "There is no page at this address.")
		return
	}
	if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", rt.method)
		h.renderError(w, r, p, http.StatusMethodNotAllowed, "This address takes "+rt.method+" requests only.")
		return
	}
	if rt.action {
		if h.config.ReadOnly {
			h.renderError(w, r, p, http.StatusForbidden, "The console is read-only: actions are turned off.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			h.renderError(w, r, p, http.StatusRequestEntityTooLarge, "The form is too large or malformed.")
			return
		}
		if err := h.checkPost(r); err != nil {
			h.renderError(w, r, p, http.StatusForbidden, err.Error())
			return
		}
	}
	p.CSRF = h.csrfToken(w, r, base)
	if err := rt.serve(h, w, r, p); err != nil {
		h.fail(w, r, p, err)
	}
}

// basePath is the prefix the console is mounted under: the part of the
// request's original path that http.StripPrefix removed.
func basePath(r *http.Request) string {
	orig, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return ""
	}
	full, rest := orig.EscapedPath(), r.URL.EscapedPath()
	if rest == "" || !strings.HasSuffix(full, rest) {
		return ""
	}
	return strings.TrimSuffix(full, rest)
}

// httpError is an error with the status and text to show.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// fail shows err: its own status for an httpError, 404 for a message that
// is not there, and 503 for Redis failing (never a 500 with internals).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p page, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		h.renderError(w, r, p, he.status, he.msg)
	case errors.Is(err, admin.ErrNotFound):
		h.renderError(w, r, p, http.StatusNotFound, "Not found: it was requeued, purged or run by someone else, or never existed.")
	default:
		h.logger.Error("Console cannot read Redis", err, watermill.LogFields{"path": r.URL.Path})
		h.renderError(w, r, p, http.StatusServiceUnavailable, "Redis did not answer as expected: "+err.Error())
	}
}

type errorData struct {
	Status     int
	StatusText string
	Message    string
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, p page, status int, msg string) {
	p.Title = http.StatusText(status)
	p.Data = errorData{Status: status, StatusText: http.StatusText(status), Message: msg}
	h.render(w, r, status, "error", p)
}

// render writes a page; a template failure (a bug) gets a plain 500.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := h.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		h.logger.Error("Console template failed", err, watermill.LogFields{"page": name})
		http.Error(w, "internal error: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
}
