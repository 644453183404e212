package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// Blob states of api.BlobProgress that end a blob.
const (
	blobDone    = "done"
	blobPresent = "present"
)

// renderer shows the events of a job: bars on a terminal, plain lines
// otherwise, NDJSON with --output json.
type renderer interface {
	event(ev api.JobEvent)
	// stop ends the display; the renderer is not used after it.
	stop()
}

// newRenderer picks the display of a followed job. Warnings (a retry)
// go to stderr as `WARNING: …` lines, as PowerShell's Write-Warning,
// except on a terminal, where they print above the bars.
func (a *app) newRenderer(g *globals, quiet bool) renderer {
	switch {
	case g.output == outputJSON:
		return &jsonRenderer{enc: json.NewEncoder(a.stdout)}
	case quiet:
		return quietRenderer{warn: a.stderr}
	case a.terminal(a.stdout):
		return newBarRenderer(a.stdout)
	default:
		return newPlainRenderer(a.stdout, a.stderr)
	}
}

// jsonRenderer prints each event as one line of JSON (NDJSON), the
// stream's own lines; the last is the result event, whose job is final.
type jsonRenderer struct{ enc *json.Encoder }

func (r *jsonRenderer) event(ev api.JobEvent) { _ = r.enc.Encode(ev) }
func (r *jsonRenderer) stop()                 {}

// quietRenderer prints only the warnings; the caller prints the closing
// sentence, `Downloaded in …`, as the reference does.
type quietRenderer struct{ warn io.Writer }

func (r quietRenderer) event(ev api.JobEvent) {
	if ev.Type == api.EventWarning {
		fmt.Fprintf(r.warn, "WARNING: %s\n", ev.Message)
	}
}

func (quietRenderer) stop() {}

// describeJob is a job's request as the cmdlet line that would start it,
// with the images it resolved to once known.
func describeJob(j *api.Job) string {
	s := strings.TrimSpace(j.Kind + " " + j.Request.Name + " " + describeVersions(j.Request.VersionOptions))
	if len(j.Images) > 0 {
		s += " (" + strings.Join(j.Images, ", ") + ")"
	}
	return s
}

// isFinal reports whether a job state is an end.
func isFinal(state string) bool {
	return state == api.JobSucceeded || state == api.JobFailed || state == api.JobCanceled
}

// blobLabel names a blob for people: its image and short digest.
func blobLabel(b api.BlobProgress) string {
	if b.Image != "" {
		return b.Image + " " + shortDigest(b.Digest)
	}
	return shortDigest(b.Digest)
}

// plainRenderer prints lines for a log or a pipe: the job's state changes,
// its log lines, and one line per blob when it is done or found present;
// never a line per chunk of bytes. The closing sentence or the error comes
// from the caller.
type plainRenderer struct {
	w, warn io.Writer
	state   string
	ended   map[string]bool // blobs whose line is printed
}

func newPlainRenderer(w, warn io.Writer) *plainRenderer {
	return &plainRenderer{w: w, warn: warn, ended: map[string]bool{}}
}

func (r *plainRenderer) event(ev api.JobEvent) {
	switch ev.Type {
	case api.EventState, api.EventResult:
		state := ev.State
		if state == "" && ev.Job != nil {
			state = ev.Job.State
		}
		if r.state == "" && ev.Job != nil {
			fmt.Fprintf(r.w, "Job %s %s: %s\n", ev.Job.ID, state, describeJob(ev.Job))
			for _, b := range ev.Job.Blobs {
				r.blob(b)
			}
		} else if state != r.state && !isFinal(state) {
			fmt.Fprintf(r.w, "Job %s %s\n", ev.JobID, state)
		}
		if state != "" {
			r.state = state
		}
	case api.EventLog:
		fmt.Fprintln(r.w, ev.Message)
	case api.EventWarning:
		fmt.Fprintf(r.warn, "WARNING: %s\n", ev.Message)
	case api.EventProgress:
		if ev.Blob != nil {
			r.blob(*ev.Blob)
		}
	}
}

func (r *plainRenderer) blob(b api.BlobProgress) {
	if r.ended[b.Digest] {
		return
	}
	switch b.State {
	case blobDone:
		fmt.Fprintf(r.w, "%s: done (%s)\n", blobLabel(b), cli.HumanSize(b.Total))
	case blobPresent:
		fmt.Fprintf(r.w, "%s: already present (%s)\n", blobLabel(b), cli.HumanSize(b.Total))
	default:
		return
	}
	r.ended[b.Digest] = true
}

func (r *plainRenderer) stop() {}

// barRenderer draws a progress bar per blob on a terminal, with the state
// changes, log lines and warnings printed above the bars.
//
// Lines written to an mpb container print at its next refresh, and the
// container stops refreshing once its last bar ends; so a last bar, the
// job's state, lives until stop, and the lines that come after the blobs
// (`Installed …`) still print.
type barRenderer struct {
	p      *mpb.Progress
	bars   map[string]*mpb.Bar
	order  []string
	state  string
	status *mpb.Bar
	shown  atomic.Pointer[string] // the status bar's text
}

func newBarRenderer(w io.Writer, opts ...mpb.ContainerOption) *barRenderer {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(100)}, opts...)
	r := &barRenderer{p: mpb.New(opts...), bars: map[string]*mpb.Bar{}}
	r.setStatus("Job starting")
	r.status = r.p.New(0, mpb.NopStyle(), mpb.BarRemoveOnComplete(), mpb.BarPriority(math.MaxInt),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return *r.shown.Load() })))
	return r
}

func (r *barRenderer) setStatus(s string) { r.shown.Store(&s) }

func (r *barRenderer) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(r.p, format, args...)
}

func (r *barRenderer) event(ev api.JobEvent) {
	switch ev.Type {
	case api.EventState, api.EventResult:
		state := ev.State
		if state == "" && ev.Job != nil {
			state = ev.Job.State
		}
		if r.state == "" && ev.Job != nil {
			r.printf("Job %s %s: %s\n", ev.Job.ID, state, describeJob(ev.Job))
		} else if state != r.state && !isFinal(state) {
			r.printf("Job %s %s\n", ev.JobID, state)
		}
		if state != "" {
			r.state = state
			r.setStatus(fmt.Sprintf("Job %s %s", cmp.Or(ev.JobID, jobID(ev.Job)), state))
		}
		if ev.Job != nil {
			for _, b := range ev.Job.Blobs {
				r.blob(b)
			}
		}
	case api.EventLog:
		r.printf("%s\n", ev.Message)
	case api.EventWarning:
		r.printf("WARNING: %s\n", ev.Message)
	case api.EventProgress:
		if ev.Blob != nil {
			r.blob(*ev.Blob)
		}
	}
}

// jobID is the id of j, or "" for nil.
func jobID(j *api.Job) string {
	if j == nil {
		return ""
	}
	return j.ID
}

func (r *barRenderer) blob(b api.BlobProgress) {
	bar, ok := r.bars[b.Digest]
	if !ok {
		bar = r.p.AddBar(b.Total,
			mpb.PrependDecorators(decor.Name(blobLabel(b), decor.WCSyncSpaceR)),
			mpb.AppendDecorators(
				decor.OnComplete(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace), "done"),
				decor.OnComplete(decor.Percentage(decor.WCSyncSpace), ""),
			),
		)
		r.bars[b.Digest] = bar
		r.order = append(r.order, b.Digest)
	}
	if bar.Completed() {
		return
	}
	switch b.State {
	case blobDone, blobPresent:
		bar.SetTotal(max(b.Total, b.Done), true)
	default:
		if b.Total > 0 {
			bar.SetTotal(b.Total, false)
		}
		bar.SetCurrent(b.Done)
	}
}

// stop aborts the bars that did not end (a failed job, a detach) and waits
// for the last drawing.
func (r *barRenderer) stop() {
	for _, d := range r.order {
		if b := r.bars[d]; !b.Completed() {
			b.Abort(false)
		}
	}
	r.status.SetTotal(-1, true)
	r.p.Wait()
}

// byteProgress shows the bytes of a transfer of unknown length (a save, an
// upload): a spinner with the bytes so far and the speed on a terminal,
// nothing otherwise. Write counts bytes and never fails.
type byteProgress interface {
	io.Writer
	// stop ends the display: complete when ok, aborted otherwise.
	stop(ok bool)
}

func (a *app) newByteProgress(g *globals, label string) byteProgress {
	if g.output == outputJSON || !a.terminal(a.stdout) {
		return noProgress{}
	}
	return newSpinnerProgress(a.stdout, label)
}

// noProgress shows nothing.
type noProgress struct{}

func (noProgress) Write(p []byte) (int, error) { return len(p), nil }
func (noProgress) stop(bool)                   {}

// spinnerProgress is a byteProgress drawn with mpb.
type spinnerProgress struct {
	p   *mpb.Progress
	bar *mpb.Bar
}

func newSpinnerProgress(w io.Writer, label string, opts ...mpb.ContainerOption) *spinnerProgress {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(100)}, opts...)
	p := mpb.New(opts...)
	bar := p.New(0, mpb.SpinnerStyle(),
		mpb.PrependDecorators(decor.Name(label, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(
			decor.CurrentKibiByte("% .1f", decor.WCSyncSpace),
			decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), "done"),
		),
	)
	return &spinnerProgress{p: p, bar: bar}
}

func (s *spinnerProgress) Write(p []byte) (int, error) {
	s.bar.IncrBy(len(p))
	return len(p), nil
}

func (s *spinnerProgress) stop(ok bool) {
	if ok {
		s.bar.SetTotal(-1, true)
	} else {
		s.bar.Abort(false)
	}
	s.p.Wait()
}
