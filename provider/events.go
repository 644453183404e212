package provider

import (
	"context"
	"sync"

	"github.com/containerprovider/containerprovider/api"
)

// maxQueuedProgress bounds the progress events queued for one watcher.
// Beyond it, new progress events of blobs not already queued are dropped;
// other events are always queued.
const maxQueuedProgress = 256

// watcher queues a job's events for one reader, so that the job never waits
// for it: progress events of a blob replace the one of the same blob still
// in the queue, and are dropped when the queue is full of them; state, log
// and result events are always kept, in order.
type watcher struct {
	mu       sync.Mutex
	queue    []api.JobEvent
	progress int  // progress events in queue
	ended    bool // no more events will come
	notify   chan struct{}
	out      chan api.JobEvent
}

func newWatcher() *watcher {
	return &watcher{notify: make(chan struct{}, 1), out: make(chan api.JobEvent)}
}

// push queues ev. It never blocks.
func (w *watcher) push(ev api.JobEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	if ev.Type == api.EventProgress && ev.Blob != nil {
		for i := len(w.queue) - 1; i >= 0; i-- {
			q := w.queue[i]
			if q.Type == api.EventProgress && q.Blob != nil && q.Blob.Digest == ev.Blob.Digest {
				w.queue[i] = ev
				w.wake()
				return
			}
		}
		if w.progress >= maxQueuedProgress {
			return
		}
		w.progress++
	}
	w.queue = append(w.queue, ev)
	w.wake()
}

// end tells the watcher that no event follows the ones queued.
func (w *watcher) end() {
	w.mu.Lock()
	w.ended = true
	w.wake()
	w.mu.Unlock()
}

func (w *watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// pump delivers the queue to out until the result event, the end, or ctx;
// then it closes out and calls done.
func (w *watcher) pump(ctx context.Context, done func()) {
	defer done()
	defer close(w.out)
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			ev := w.queue[0]
			w.queue[0] = api.JobEvent{}
			w.queue = w.queue[1:]
			if ev.Type == api.EventProgress && ev.Blob != nil {
				w.progress--
			}
			w.mu.Unlock()
			select {
			case w.out <- ev:
			case <-ctx.Done():
				return
			}
			if ev.Type == api.EventResult {
				return
			}
			continue
		}
		ended := w.ended
		w.mu.Unlock()
		if ended {
			return
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return
		}
	}
}
