package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"github.com/containerprovider/containerprovider/api"
)

// TestBarRenderer draws the scripted install with bars into a buffer,
// refreshed as a terminal would be: every blob gets its bar, the bars end
// as done, the state and log lines print above them, and stop returns.
func TestBarRenderer(t *testing.T) {
	var out syncBuffer
	r := newBarRenderer(&out, mpb.WithAutoRefresh())
	for _, ev := range installEvents() {
		if ev.Type == api.EventLog && strings.HasPrefix(ev.Message, "Installed ") {
			// The image's record is written a moment after its last
			// blob: the bars have ended and drawn by then.
			time.Sleep(300 * time.Millisecond)
		}
		r.event(ev)
	}
	r.stop()
	got := out.String()
	for _, want := range []string{
		"Job j1 queued: install NanoServer -RequiredVersion 10.0.10586.0",
		"Job j1 running",
		"Resolved NanoServer 10.0.10586.0",
		"NanoServer 10.0.10586.0 sha256:aaaaaaaaaaaa",
		"NanoServer 10.0.10586.0 sha256:bbbbbbbbbbbb",
		"NanoServer 10.0.10586.0 sha256:cccccccccccc",
		"done",
		"WARNING: layer sha256:cccccccccccc of image NanoServer 10.0.10586.0: attempt 2 of 10",
		// The line after the last blob, which a container without a
		// live bar would never print.
		"Installed NanoServer 10.0.10586.0",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("bars lack %q:\n%s", want, got)
		}
	}
	if len(r.bars) != 3 {
		t.Fatalf("%d bars, want 3", len(r.bars))
	}
	for d, b := range r.bars {
		if !b.Completed() {
			t.Fatalf("bar of %s not completed", d)
		}
	}
}

// TestBarRendererAbort stops in the middle of a job (a detach): the open
// bars are aborted and stop returns.
func TestBarRendererAbort(t *testing.T) {
	var out syncBuffer
	r := newBarRenderer(&out, mpb.WithAutoRefresh())
	for _, ev := range installEvents()[:6] {
		r.event(ev)
	}
	open := r.bars["sha256:"+strings.Repeat("c", 64)]
	r.stop()
	if open == nil || !open.Aborted() {
		t.Fatalf("the unfinished bar was not aborted")
	}
}
