package web

import (
	"net/http"
	"slices"

	"github.com/redrive-go/redrive/admin"
)

// Poison list paging: a page shows up to poisonPageRows messages and reads
// at most poisonPageMaxScan entries to find them, so that a filter that
// rarely matches still answers fast (with a link to read on).
const (
	poisonPageRows    = 50
	poisonPageMaxScan = 5000
)

type poisonData struct {
	Stream string
	// Topic is the topic whose poison stream this is; "" for a poison
	// topic.
	Topic    string
	Filter   poisonFilter
	Ages     any
	Oldest   bool
	Cursor   string
	Page     admin.PoisonPage
	Handlers []string
}

// poisonStream reads the stream parameter and checks that it holds poisoned
// messages: no action of the console may touch any other stream.
func (h *Handler) poisonStream(r *http.Request) (stream, topic string, err error) {
	if stream, err = name(r, "stream"); err != nil {
		return "", "", err
	}
	topic, _ = admin.PoisonStreamTopic(stream)
	ok, err := h.admin.IsPoisonStream(r.Context(), stream)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", notFound("%q is not a poison stream.", trunc(stream, 120))
	}
	return stream, topic, nil
}

func (h *Handler) poisonList(w http.ResponseWriter, r *http.Request, p page) error {
	stream, topic, err := h.poisonStream(r)
	if err != nil {
		return err
	}
	f, err := readPoisonFilter(r)
	if err != nil {
		return err
	}
	cursor, err := entryID(r, "cursor", true)
	if err != nil {
		return err
	}
	order := r.FormValue("order")
	if order != "" && order != "oldest" && order != "newest" {
		return badRequest("%q is not an order (use newest or oldest).", trunc(order, 40))
	}
	oldest := order == "oldest"
	pg, err := h.admin.PagePoisoned(r.Context(), stream, admin.PagePoisonedOptions{
		Filter: f.selector(), Handler: f.Handler, NewestFirst: !oldest, Cursor: cursor, Limit: poisonPageRows, MaxScan: poisonPageMaxScan,
	})
	if err != nil {
		return err
	}
	d := poisonData{Stream: stream, Topic: topic, Filter: f, Ages: ages, Oldest: oldest, Cursor: cursor, Page: pg}
	for _, m := range pg.Messages {
		if m.Handler != "" && !slices.Contains(d.Handlers, m.Handler) {
			d.Handlers = append(d.Handlers, m.Handler)
		}
	}
	slices.Sort(d.Handlers)
	p.Title, p.Nav, p.Data = "Poisoned: "+stream, "poison", d
	h.render(w, r, http.StatusOK, "poison", p)
	return nil
}

type messageData struct {
	Stream      string
	Topic       string
	Msg         admin.PoisonedMessage
	Metadata    [][2]string
	ShowPayload bool
}

func (h *Handler) message(w http.ResponseWriter, r *http.Request, p page) error {
	stream, topic, err := h.poisonStream(r)
	if err != nil {
		return err
	}
	id, err := entryID(r, "id", false)
	if err != nil {
		return err
	}
	showPayload := r.FormValue("payload") == "1"
	if showPayload && !h.config.ShowPayloads {
		return &httpError{status: http.StatusForbidden, msg: "Payloads are hidden: the console runs without ShowPayloads (they can hold personal data)."}
	}
	m, err := h.admin.ShowPoisoned(r.Context(), stream, id, admin.ShowOptions{Payload: showPayload})
	if err != nil {
		return err
	}
	d := messageData{Stream: stream, Topic: topic, Msg: m, ShowPayload: showPayload}
	for k, v := range m.Metadata {
		d.Metadata = append(d.Metadata, [2]string{k, v})
	}
	slices.SortFunc(d.Metadata, func(a, b [2]string) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	p.Title, p.Nav, p.Data = "Message "+m.UUID, "poison", d
	h.render(w, r, http.StatusOK, "message", p)
	return nil
}
