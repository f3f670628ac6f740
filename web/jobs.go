package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/redrive-go/redrive/admin"
)

// keptJobs is how many finished bulk actions stay viewable.
const keptJobs = 50

// job is one bulk action running in the background, so that its page can
// show progress while it works through a large poison stream.
type job struct {
	ID      string
	Title   string
	Back    string // where the "back" link of its page goes, relative to base
	Started time.Time

	mu       sync.Mutex
	progress admin.Progress
	done     bool
	finished time.Time
	summary  string
	preview  *previewData
	err      string
}

// jobResult is what a job's work ends with.
type jobResult struct {
	// Summary is one line for people.
	Summary string
	// Preview, for a dry run, is the count and confirm form to show.
	Preview *previewData
}

// jobView is a consistent copy of a job for a page or JSON.
type jobView struct {
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	Back     string         `json:"-"`
	Started  time.Time      `json:"started"`
	Progress admin.Progress `json:"progress"`
	Percent  int            `json:"percent"`
	Done     bool           `json:"done"`
	Finished time.Time      `json:"finished,omitzero"`
	Summary  string         `json:"summary,omitempty"`
	Preview  *previewData   `json:"-"`
	Error    string         `json:"error,omitempty"`
}

func (j *job) view() jobView {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.ID, Title: j.Title, Back: j.Back, Started: j.Started, Progress: j.progress,
		Done: j.done, Finished: j.finished, Summary: j.summary, Preview: j.preview, Error: j.err}
	switch {
	case j.done:
		v.Percent = 100
	case j.progress.Total > 0:
		v.Percent = min(99, 100*j.progress.Scanned/j.progress.Total)
	}
	return v
}

// jobs holds the handler's bulk actions. Their goroutines belong to the
// handler: Close cancels them and waits for them to return.
type jobs struct {
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	wg      sync.WaitGroup

	mu    sync.Mutex
	byID  map[string]*job
	order []string
}

func newJobs(timeout time.Duration) *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &jobs{ctx: ctx, cancel: cancel, timeout: timeout, byID: map[string]*job{}}
}

// start runs work in the background; work reports progress through its
// callback.
func (js *jobs) start(title, back string, work func(ctx context.Context, progress admin.ProgressFunc) (jobResult, error)) *job {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	j := &job{ID: hex.EncodeToString(b), Title: title, Back: back, Started: time.Now()}
	js.mu.Lock()
	js.byID[j.ID] = j
	js.order = append(js.order, j.ID)
	js.forgetOldLocked()
	js.mu.Unlock()

	js.wg.Add(1)
	go func() {
		defer js.wg.Done()
		ctx, cancel := context.WithTimeout(js.ctx, js.timeout)
		defer cancel()
		res, err := work(ctx, func(p admin.Progress) {
			j.mu.Lock()
			j.progress = p
			j.mu.Unlock()
		})
		j.mu.Lock()
		j.done, j.finished, j.summary, j.preview = true, time.Now(), res.Summary, res.Preview
		if err != nil {
			j.err = err.Error()
		}
		j.mu.Unlock()
	}()
	return j
}

// forgetOldLocked drops the oldest finished jobs beyond keptJobs.
func (js *jobs) forgetOldLocked() {
	for i := 0; len(js.order) > keptJobs && i < len(js.order); {
		j := js.byID[js.order[i]]
		if j.view().Done {
			delete(js.byID, j.ID)
			js.order = append(js.order[:i], js.order[i+1:]...)
			continue
		}
		i++
	}
}

func (js *jobs) get(id string) (*job, bool) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j, ok := js.byID[id]
	return j, ok
}

// close cancels running jobs and waits for them.
func (js *jobs) close() {
	js.cancel()
	js.wg.Wait()
}
