package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/provider"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

var at = time.Date(2016, 1, 12, 9, 30, 0, 0, time.UTC)

func TestExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"usage", cli.Usagef("bad"), 2},
		{"not found", &client.Error{StatusCode: 404, API: api.Error{Code: "NotFound", Message: "x"}}, 3},
		{"conflict", &client.Error{StatusCode: 409, API: api.Error{Code: "Conflict", Message: "x"}}, 4},
		{"already exists", &client.Error{StatusCode: 409, API: api.Error{Code: "AlreadyExists", Message: "x"}}, 4},
		{"invalid", &client.Error{StatusCode: 400, API: api.Error{Code: "InvalidArgument", Message: "x"}}, 1},
		{"internal", &client.Error{StatusCode: 500, API: api.Error{Code: "Internal", Message: "x"}}, 1},
		{"a job that found nothing", &jobError{job: api.Job{Error: &api.Error{Code: "NotFound", Message: "x"}}}, 3},
		{"a failed job", &jobError{job: api.Job{Error: &api.Error{Code: "FailedPrecondition", Message: "x"}}}, 1},
		{"detached", errDetached, 130},
		{"interrupted", fmt.Errorf("GET: %w", context.Canceled), 130},
		{"plain", errors.New("boom"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Fatalf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	e := newEnv(t, &fakeBackend{findResult: []api.FindEntry{
		{Name: "NanoServer", Version: "10.0.10586.0", Source: "catalog", Description: tp4, IsOSImage: true},
	}})
	r := e.run(t, "", "find", "Nano*", "--minimum-version", "10.0", "--source", "catalog").want(t, 0)
	if !strings.HasPrefix(r.stdout, "Name                 Version                 Source      Description\n") ||
		!strings.Contains(r.stdout, "NanoServer           10.0.10586.0            catalog     Container OS Image of Windows Server 2016 Techn...\n") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	want := provider.FindOptions{Name: "Nano*", VersionOptions: api.VersionOptions{MinimumVersion: "10.0"}, Source: "catalog"}
	if got := e.fake.finds[len(e.fake.finds)-1]; !reflect.DeepEqual(got, want) {
		t.Fatalf("find options %+v, want %+v", got, want)
	}

	r = e.run(t, "", "--output", "json", "find").want(t, 0)
	var resp api.FindResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.Images) != 1 || resp.Images[0].Source != "catalog" {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	r = e.run(t, "", "find", "Missing").want(t, 3)
	if r.stderr != "cimage: no image named \"Missing\" in the sources\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "find", "a", "b").want(t, 2)
	e.run(t, "", "find", "--newest").want(t, 2)

	// An incomplete index: a warning line on stderr, a field in JSON.
	const warning = "source reg: the index is incomplete: its first sync has read 500 of the 1000 repositories listed so far; images may be missing"
	e.fake.findWarnings = []string{warning}
	r = e.run(t, "", "find", "Nano*").want(t, 0)
	if r.stderr != "WARNING: "+warning+"\n" || !strings.Contains(r.stdout, "NanoServer") {
		t.Fatalf("find with an incomplete index: stdout\n%s\nstderr %q", r.stdout, r.stderr)
	}
	r = e.run(t, "", "--output", "json", "find").want(t, 0)
	resp = api.FindResponse{}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.Warnings) != 1 || resp.Warnings[0] != warning {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
}

func TestImages(t *testing.T) {
	e := newEnv(t, &fakeBackend{imagesResult: []api.Image{
		{Name: "NanoServer", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true},
		{Name: "WindowsServerCoreIIS", Publisher: "CN=Demo", Version: "1.0.0.0",
			ParentImage: &api.ParentRef{Name: "WindowsServerCore", Version: "10.0.10586.0"}},
	}})
	r := e.run(t, "", "images").want(t, 0)
	const want = "" +
		"Name                    Publisher       Version         IsOSImage\n" +
		"----                    ---------       -------         ---------\n" +
		"NanoServer              CN=Microsoft    10.0.10586.0    True\n" +
		"WindowsServerCoreIIS    CN=Demo         1.0.0.0         False\n"
	if r.stdout != want {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	// Flags before and after the name, and the global --output after the command.
	r = e.run(t, "", "images", "--publisher", "CN=Demo", "Windows*", "--child-of", "WindowsServerCore", "--all-versions", "--output", "json").want(t, 0)
	wantOpts := provider.GetOptions{Name: "Windows*", Publisher: "CN=Demo", ChildOf: "WindowsServerCore", VersionOptions: api.VersionOptions{AllVersions: true}}
	if got := e.fake.gets[len(e.fake.gets)-1]; !reflect.DeepEqual(got, wantOpts) {
		t.Fatalf("options %+v, want %+v", got, wantOpts)
	}
	var resp api.ImagesResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || len(resp.Images) != 2 || resp.Images[1].ParentImage == nil {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
}

func TestRemove(t *testing.T) {
	e := newEnv(t, &fakeBackend{removeFn: func(o provider.RemoveOptions) (api.RemoveResult, error) {
		if o.Name == "Nothing" {
			return api.RemoveResult{}, fmt.Errorf("image %q: %w", o.Name, errdefs.ErrNotFound)
		}
		if o.Name == "WindowsServerCore" {
			return api.RemoveResult{}, &provider.DependentsError{Image: "WindowsServerCore 10.0.10586.0",
				Dependents: []string{"image microsoft/iis 1.0.0.0", "container web1"}}
		}
		return api.RemoveResult{
			Removed:      []api.Image{{Name: "microsoft/iis", Version: "1.0.0.0", ID: "0123456789abcdef0123"}},
			BlobsDeleted: 3, BytesFreed: 5 << 20,
		}, nil
	}})
	r := e.run(t, "", "remove", "microsoft/iis", "--required-version", "1.0.0.0").want(t, 0)
	if r.stdout != "Removed microsoft/iis 1.0.0.0 (id 0123456789ab)\nFreed 5.0 MiB (3 blobs deleted).\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if got := e.fake.removes[len(e.fake.removes)-1]; !reflect.DeepEqual(got, provider.RemoveOptions{Name: "microsoft/iis", VersionOptions: api.VersionOptions{RequiredVersion: "1.0.0.0"}}) {
		t.Fatalf("options %+v", got)
	}
	e.run(t, "", "remove", "--id", "0123").want(t, 0)
	if got := e.fake.removes[len(e.fake.removes)-1]; !reflect.DeepEqual(got, provider.RemoveOptions{ID: "0123"}) {
		t.Fatalf("options %+v", got)
	}

	r = e.run(t, "", "remove", "WindowsServerCore").want(t, 4)
	if r.stderr != "cimage: image WindowsServerCore 10.0.10586.0 cannot be removed: image microsoft/iis 1.0.0.0, container web1 depend on it\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = e.run(t, "", "remove", "Nothing").want(t, 3)
	for _, args := range [][]string{
		{"remove"},
		{"remove", "a", "b"},
		{"remove", "a", "--id", "0123"},
		{"remove", "--id", "0123", "--all-versions"},
	} {
		if r := e.run(t, "", args...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// TestRemoveOfSeveral: a name that matches several images removes nothing
// without --force and lists them; on a terminal a yes removes exactly the
// images listed, by digest; --force removes them at once; --what-if shows
// the plan.
func TestRemoveOfSeveral(t *testing.T) {
	installed := []api.Image{
		{Name: "NanoServer", Version: "10.0.10586.0", ID: "aaaaaaaaaaaaaaaa", Digest: "sha256:aaaaaaaaaaaaaaaa"},
		{Name: "NanoServer", Version: "10.0.14393.0", ID: "bbbbbbbbbbbbbbbb", Digest: "sha256:bbbbbbbbbbbbbbbb"},
	}
	e := newEnv(t, &fakeBackend{removeFn: func(o provider.RemoveOptions) (api.RemoveResult, error) {
		switch {
		case o.Name != "" && !o.Force:
			return api.RemoveResult{}, &provider.MatchesError{Name: o.Name, Matches: installed}
		case o.WhatIf:
			return api.RemoveResult{Removed: installed, WhatIf: true}, nil
		}
		return api.RemoveResult{Removed: installed, BlobsDeleted: 4, BytesFreed: 1 << 20}, nil
	}})
	const listed = "\"*\" matches 2 installed images:\n" +
		"  NanoServer 10.0.10586.0 (id aaaaaaaaaaaa)\n" +
		"  NanoServer 10.0.14393.0 (id bbbbbbbbbbbb)\n"

	r := e.run(t, "y\n", "remove", "*").want(t, 4)
	if r.stdout != "" || r.stderr != listed+"cimage: nothing removed: give --force to remove the 2 images, or a version to remove one\n" {
		t.Fatalf("without a terminal: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if n := len(e.fake.removes); n != 1 {
		t.Fatalf("%d removals sent, want the one refused", n)
	}

	e.interactive = true
	r = e.run(t, "n\n", "remove", "*").want(t, 4)
	if !strings.HasPrefix(r.stderr, listed+"Remove these 2 images? [y/N] cimage: nothing removed") {
		t.Fatalf("a no: stderr %q", r.stderr)
	}
	r = e.run(t, "", "remove", "*").want(t, 4) // no answer at all
	r = e.run(t, "yes\n", "remove", "*").want(t, 0)
	if !strings.HasPrefix(r.stdout, "Removed NanoServer 10.0.10586.0") {
		t.Fatalf("a yes: stdout %q", r.stdout)
	}
	want := provider.RemoveOptions{IDs: []string{"sha256:aaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbb"}}
	if got := e.fake.removes[len(e.fake.removes)-1]; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a yes: %+v, want %+v", got, want)
	}
	e.interactive = false

	r = e.run(t, "", "remove", "*", "--force").want(t, 0)
	if got := e.fake.removes[len(e.fake.removes)-1]; !reflect.DeepEqual(got, provider.RemoveOptions{Name: "*", Force: true}) {
		t.Fatalf("--force: %+v", got)
	}
	r = e.run(t, "", "remove", "NanoServer", "--what-if").want(t, 0)
	if r.stdout != "What if: removing NanoServer 10.0.10586.0 (id aaaaaaaaaaaa)\nWhat if: removing NanoServer 10.0.14393.0 (id bbbbbbbbbbbb)\n" {
		t.Fatalf("--what-if: stdout %q", r.stdout)
	}
	if got := e.fake.removes[len(e.fake.removes)-1]; !got.WhatIf {
		t.Fatalf("--what-if sent %+v", got)
	}
	r = e.run(t, "", "--output", "json", "remove", "NanoServer", "--what-if").want(t, 0)
	var res api.RemoveResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.WhatIf || len(res.Removed) != 2 {
		t.Fatalf("--what-if json %q: %v", r.stdout, err)
	}
}

// TestErrorLineNamesDependents: dependents the message does not name are
// added to the line.
func TestErrorLineNamesDependents(t *testing.T) {
	err := &client.Error{StatusCode: 409, API: api.Error{Code: "Conflict", Message: "image A 1.0.0.0 is in use",
		Dependents: []string{"image B 1.0.0.0", "container c1"}}}
	if got := errorLine(&globals{}, err); got != "image A 1.0.0.0 is in use (dependents: image B 1.0.0.0, container c1)" {
		t.Fatalf("line %q", got)
	}
}

// installEvents is a scripted install of NanoServer with its parent:
// states, a log line, progress that must not print a line per chunk, a
// blob already present, and the result.
func installEvents() []api.JobEvent {
	req := api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}
	job := &api.Job{ID: "j1", Kind: "install", State: api.JobQueued, Request: req, Started: at}
	blob := func(d, state string, done int64) *api.BlobProgress {
		return &api.BlobProgress{Digest: "sha256:" + strings.Repeat(d, 64), Image: "NanoServer 10.0.10586.0", Total: 2 << 20, Done: done, State: state}
	}
	done := &api.Job{ID: "j1", Kind: "install", State: api.JobSucceeded, Request: req, Started: at, Finished: at.Add(3 * time.Second),
		Message: "Downloaded in 0 hours, 0 minutes, 3 seconds."}
	return []api.JobEvent{
		{Type: api.EventState, JobID: "j1", Time: at, State: api.JobQueued, Job: job},
		{Type: api.EventState, JobID: "j1", Time: at, State: api.JobRunning},
		{Type: api.EventLog, JobID: "j1", Time: at, Message: "Resolved NanoServer 10.0.10586.0"},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("a", "present", 2<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("b", "downloading", 1<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("c", "downloading", 1<<10)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("c", "retrying", 1<<10)},
		{Type: api.EventWarning, JobID: "j1", Time: at, Message: "layer sha256:cccccccccccc of image NanoServer 10.0.10586.0: attempt 2 of 10 in 1s: connection refused"},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("b", "downloading", 2<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("b", "verifying", 2<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("b", "done", 2<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("b", "done", 2<<20)},
		{Type: api.EventProgress, JobID: "j1", Time: at, Blob: blob("c", "done", 2<<20)},
		{Type: api.EventLog, JobID: "j1", Time: at, Message: "Installed NanoServer 10.0.10586.0"},
		{Type: api.EventState, JobID: "j1", Time: at, State: api.JobSucceeded},
		{Type: api.EventResult, JobID: "j1", Time: at, State: api.JobSucceeded, Job: done},
	}
}

// TestInstallPlainProgress follows a scripted job without a terminal.
func TestInstallPlainProgress(t *testing.T) {
	e := newEnv(t, &fakeBackend{watch: scripted(installEvents()...)})
	r := e.run(t, "", "install", "NanoServer", "--required-version", "10.0.10586.0", "--source", "catalog", "--force", "--no-parents").want(t, 0)
	const want = "" +
		"Job j1 queued: install NanoServer -RequiredVersion 10.0.10586.0\n" +
		"Job j1 running\n" +
		"Resolved NanoServer 10.0.10586.0\n" +
		"NanoServer 10.0.10586.0 sha256:aaaaaaaaaaaa: already present (2.0 MiB)\n" +
		"NanoServer 10.0.10586.0 sha256:bbbbbbbbbbbb: done (2.0 MiB)\n" +
		"NanoServer 10.0.10586.0 sha256:cccccccccccc: done (2.0 MiB)\n" +
		"Installed NanoServer 10.0.10586.0\n" +
		"Downloaded in 0 hours, 0 minutes, 3 seconds.\n"
	if r.stdout != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	const warning = "WARNING: layer sha256:cccccccccccc of image NanoServer 10.0.10586.0: attempt 2 of 10 in 1s: connection refused\n"
	if r.stderr != warning {
		t.Fatalf("stderr %q, want the retry", r.stderr)
	}
	wantReq := api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}, Source: "catalog", Force: true, NoParents: true}
	if len(e.fake.installs) != 1 || e.fake.installs[0] != wantReq {
		t.Fatalf("install requests %+v, want %+v", e.fake.installs, wantReq)
	}
}

// TestInstallQuiet prints the reference's one line, and the warnings on
// stderr.
func TestInstallQuiet(t *testing.T) {
	e := newEnv(t, &fakeBackend{watch: scripted(installEvents()...)})
	r := e.run(t, "", "install", "NanoServer", "--quiet").want(t, 0)
	if r.stdout != "Downloaded in 0 hours, 0 minutes, 3 seconds.\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "WARNING: layer sha256:cccccccccccc") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "install", "--path", "x.tar", "--quiet").want(t, 2)
}

func TestInstallJSON(t *testing.T) {
	e := newEnv(t, &fakeBackend{watch: scripted(installEvents()...)})
	r := e.run(t, "", "--output", "json", "install", "NanoServer").want(t, 0)
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	var types []string
	for sc.Scan() {
		var ev api.JobEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		types = append(types, ev.Type)
	}
	if len(types) != len(installEvents()) || types[len(types)-1] != api.EventResult {
		t.Fatalf("events %v", types)
	}
}

func TestInstallFailures(t *testing.T) {
	failed := func(code, msg string) func(context.Context, string) (<-chan api.JobEvent, error) {
		job := &api.Job{ID: "j1", Kind: "install", State: api.JobQueued, Request: api.InstallRequest{Name: "iis"}}
		end := &api.Job{ID: "j1", Kind: "install", State: api.JobFailed, Error: &api.Error{Code: code, Message: msg}}
		return scripted(
			api.JobEvent{Type: api.EventState, JobID: "j1", State: api.JobQueued, Job: job},
			api.JobEvent{Type: api.EventResult, JobID: "j1", State: api.JobFailed, Job: end},
		)
	}
	for _, tc := range []struct {
		name    string
		fake    *fakeBackend
		code    int
		message string
	}{
		{"digest mismatch", &fakeBackend{watch: failed("FailedPrecondition", "layer sha256:ab of microsoft/iis 1.0.0.0: digest mismatch")},
			1, "cimage: layer sha256:ab of microsoft/iis 1.0.0.0: digest mismatch\n"},
		{"missing parent", &fakeBackend{watch: failed("NotFound", "parent WindowsServerCore 10.0.10586.0 is not installed")},
			3, "cimage: parent WindowsServerCore 10.0.10586.0 is not installed\n"},
		{"refused before the job", &fakeBackend{installErr: fmt.Errorf("RequiredVersion and MinimumVersion exclude each other: %w", errdefs.ErrInvalidArgument)},
			1, "cimage: RequiredVersion and MinimumVersion exclude each other\n"},
		{"canceled", &fakeBackend{watch: scripted(
			api.JobEvent{Type: api.EventResult, JobID: "j1", State: api.JobCanceled, Job: &api.Job{ID: "j1", State: api.JobCanceled}})},
			1, "cimage: job j1 was canceled; its downloaded data stays for the next install\n"},
		{"stream cut before the result", &fakeBackend{watch: scripted(installEvents()[:3]...)},
			1, "cimage: the stream of job j1 ended before the job did (providerd stopped, or the connection dropped); the job goes on when providerd runs: re-attach with `cimage jobs attach j1`\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.fake)
			r := e.run(t, "", "install", "iis").want(t, tc.code)
			if r.stderr != tc.message {
				t.Fatalf("stderr %q, want %q", r.stderr, tc.message)
			}
		})
	}
}

// TestInstallCtrlCDetaches: Ctrl-C while following leaves the job
// running, says how to re-attach and exits with 130.
func TestInstallCtrlCDetaches(t *testing.T) {
	watchEnded := make(chan struct{})
	fake := &fakeBackend{watch: func(ctx context.Context, id string) (<-chan api.JobEvent, error) {
		ch := make(chan api.JobEvent)
		go func() {
			defer close(ch)
			defer close(watchEnded)
			select {
			case ch <- installEvents()[0]:
			case <-ctx.Done():
				return
			}
			<-ctx.Done() // the job goes on; only the watch ends
		}()
		return ch, nil
	}}
	e := newEnv(t, fake)
	// The user presses Ctrl-C once the first line is on the screen.
	e.onOutput = e.ctrlC
	r := e.run(t, "", "install", "NanoServer").want(t, 130)
	if !strings.Contains(r.stderr, "Detached from job j1: it goes on in providerd. Re-attach with: cimage jobs attach j1") {
		t.Fatalf("stderr %q", r.stderr)
	}
	select {
	case <-watchEnded:
	case <-time.After(30 * time.Second):
		t.Fatal("the server kept watching after the client left")
	}
	if len(fake.canceled) != 0 {
		t.Fatalf("the job was canceled: %v", fake.canceled)
	}
}

func TestInstallDetachFlag(t *testing.T) {
	fake := &fakeBackend{}
	e := newEnv(t, fake)
	r := e.run(t, "", "install", "--detach", "NanoServer").want(t, 0)
	if r.stdout != "j1\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	r = e.run(t, "", "install", "NanoServer", "--detach", "--output", "json").want(t, 0)
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.ID != "j1" {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	e.run(t, "", "install").want(t, 2)
	e.run(t, "", "install", "a", "b").want(t, 2)
}

func TestJobs(t *testing.T) {
	running := api.Job{ID: "j1", Kind: "install", State: api.JobRunning, Started: at,
		Request: api.InstallRequest{Name: "microsoft/iis"}, Images: []string{"WindowsServerCore 10.0.10586.0", "microsoft/iis 1.0.0.0"},
		Blobs: []api.BlobProgress{
			{Digest: "sha256:" + strings.Repeat("1", 64), Image: "WindowsServerCore 10.0.10586.0", Total: 4 << 20, Done: 4 << 20, State: "done"},
			{Digest: "sha256:" + strings.Repeat("2", 64), Image: "microsoft/iis 1.0.0.0", Total: 4 << 20, Done: 1 << 20, State: "downloading"},
		}}
	failed := api.Job{ID: "j0", Kind: "install", State: api.JobFailed, Started: at.Add(-time.Hour), Finished: at.Add(-time.Hour + time.Second),
		Request: api.InstallRequest{Name: "Nope"}, Error: &api.Error{Code: "NotFound", Message: `no image named "Nope"`}}
	fake := &fakeBackend{jobsResult: []api.Job{running, failed}, job: &running, watch: scripted(installEvents()...)}
	e := newEnv(t, fake)

	r := e.run(t, "", "jobs").want(t, 0)
	const wantList = "" +
		"Id        State      Image                                                  Progress                Started              Message\n" +
		"--        -----      -----                                                  --------                -------              -------\n" +
		"j1        running    WindowsServerCore 10.0.10586.0, microsoft/iis 1.0.0.0  5.0 MiB / 8.0 MiB       2016-01-12 09:30:00\n" +
		"j0        failed     Nope                                                                           2016-01-12 08:30:00  no image named \"Nope\"\n"
	if r.stdout != wantList {
		t.Fatalf("jobs:\n%s\nwant:\n%s", r.stdout, wantList)
	}
	r = e.run(t, "", "jobs", "show", "j1").want(t, 0)
	for _, want := range []string{"Id       : j1\n", "State    : running\n", "Progress : 5.0 MiB / 8.0 MiB\n",
		"sha256:222222222222  microsoft/iis 1.0.0.0", "downloading  1.0 MiB / 4.0 MiB"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("jobs show lacks %q:\n%s", want, r.stdout)
		}
	}
	e.run(t, "", "jobs", "show", "j9").want(t, 3)
	e.run(t, "", "jobs", "show").want(t, 2)
	e.run(t, "", "jobs", "dance").want(t, 2)

	r = e.run(t, "", "jobs", "attach", "j1").want(t, 0)
	if !strings.HasSuffix(r.stdout, "Downloaded in 0 hours, 0 minutes, 3 seconds.\n") {
		t.Fatalf("attach stdout:\n%s", r.stdout)
	}
	r = e.run(t, "", "jobs", "cancel", "j1").want(t, 0)
	if r.stdout != "Job j1 canceled\n" {
		t.Fatalf("cancel stdout %q", r.stdout)
	}
	e.run(t, "", "jobs", "cancel", "j9").want(t, 3)
	r = e.run(t, "", "jobs", "--output", "json").want(t, 0)
	var jobs api.JobsResponse
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs.Jobs) != 2 {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
}

func TestSourcesTableWithMirrors(t *testing.T) {
	st := api.SourceStatus{Mode: "crawl", Entries: 4, Origin: "http://cache:5000"}
	got := formatSources([]api.Source{
		{Name: "catalog", Location: "http://127.0.0.1:5000", Mirrors: []api.SourceMirror{{Location: "http://cache:5000"}, {Location: "http://zot:5000"}}, Status: &st},
		{Name: "hub", Location: "https://registry.example", Status: &api.SourceStatus{Complete: true, Entries: 7}},
	})
	want := "" +
		"Name            Location                        Mirrors                            State        Entries  LastSync              Signatures  LastError\n" +
		"----            --------                        -------                            -----        -------  --------              ----------  ---------\n" +
		"catalog         http://127.0.0.1:5000           http://cache:5000 http://zot:5000  from-mirror  4        never                 off\n" +
		"hub             https://registry.example                                           complete     7        never                 off\n"
	if got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestSourcesTableTrusted(t *testing.T) {
	done := &api.SourceStatus{Complete: true, Entries: 7}
	for _, tc := range []struct {
		name    string
		sources []api.Source
		want    string
	}{
		{
			name: "a trusted source",
			sources: []api.Source{
				{Name: "catalog", Location: "http://127.0.0.1:5000", Status: done},
				{Name: "psgallery", Location: "https://registry.example", Trusted: true, Status: done},
			},
			want: "" +
				"Name            Location                        State       Entries  LastSync              Signatures  Trusted  LastError\n" +
				"----            --------                        -----       -------  --------              ----------  -------  ---------\n" +
				"catalog         http://127.0.0.1:5000           complete    7        never                 off         False\n" +
				"psgallery       https://registry.example        complete    7        never                 off         True\n",
		},
		{
			name: "a trusted source and mirrors",
			sources: []api.Source{
				{Name: "catalog", Location: "http://127.0.0.1:5000", Mirrors: []api.SourceMirror{{Location: "http://cache:5000"}}, Status: done},
				{Name: "psgallery", Location: "https://registry.example", Trusted: true, Status: &api.SourceStatus{LastError: "GET /v2/_catalog: 503 Service Unavailable"}},
			},
			want: "" +
				"Name            Location                        Mirrors            State       Entries  LastSync              Signatures  Trusted  LastError\n" +
				"----            --------                        -------            -----       -------  --------              ----------  -------  ---------\n" +
				"catalog         http://127.0.0.1:5000           http://cache:5000  complete    7        never                 off         False\n" +
				"psgallery       https://registry.example                           incomplete  0        never                 off         True     GET /v2/_catalog: 503 Service Unavailable\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatSources(tc.sources); got != tc.want {
				t.Fatalf("table:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestSourceTrusted: source add --trusted (and -Trusted) sends the mark
// and says so; source list shows it in its JSON and its table.
func TestSourceTrusted(t *testing.T) {
	fake := &fakeBackend{}
	e := newEnv(t, fake)
	r := e.run(t, "", "source", "add", "psgallery", "https://registry.example", "--trusted").want(t, 0)
	if r.stdout != "Added source psgallery (https://registry.example), signatures off, trusted\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	e.run(t, "", "source", "add", "pm", "https://pm.example", "-Trusted").want(t, 0)
	r = e.run(t, "", "--output", "json", "source", "add", "asks", "https://asks.example").want(t, 0)
	want := []api.Source{
		{Name: "psgallery", Location: "https://registry.example", Trusted: true},
		{Name: "pm", Location: "https://pm.example", Trusted: true},
		{Name: "asks", Location: "https://asks.example"},
	}
	if !reflect.DeepEqual(fake.added, want) {
		t.Fatalf("added %+v, want %+v", fake.added, want)
	}
	if strings.Contains(r.stdout, "trusted") {
		t.Fatalf("a source that is not trusted is printed as %s", r.stdout)
	}

	fake.sources = want
	r = e.run(t, "", "--output", "json", "source", "list").want(t, 0)
	var listed struct {
		Sources []map[string]any `json:"sources"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed.Sources) != 3 {
		t.Fatalf("source list json %q: %v", r.stdout, err)
	}
	for i, trusted := range []any{true, true, nil} {
		if got := listed.Sources[i]["trusted"]; got != trusted {
			t.Errorf("source list json: %s trusted %v, want %v", listed.Sources[i]["name"], got, trusted)
		}
	}
	r = e.run(t, "", "source", "list").want(t, 0)
	if !regexp.MustCompile(`(?m)^Name .* Signatures +Trusted +LastError$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^psgallery .* off +True$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^asks .* off +False$`).MatchString(r.stdout) {
		t.Fatalf("source list:\n%s", r.stdout)
	}
}

func TestSources(t *testing.T) {
	fake := &fakeBackend{}
	e := newEnv(t, fake)
	r := e.run(t, "", "source", "list").want(t, 0)
	synced := fakeSynced.Local().Format("2006-01-02 15:04:05")
	wantList := "" +
		"Name            Location                        State       Entries  LastSync              Signatures  LastError\n" +
		"----            --------                        -----       -------  --------              ----------  ---------\n" +
		"catalog         http://127.0.0.1:5000           complete    20       " + synced + "   off\n" +
		"hub             https://registry.example        syncing     7        never                 off\n"
	if r.stdout != wantList {
		t.Fatalf("source list:\n%s\nwant:\n%s", r.stdout, wantList)
	}
	r = e.run(t, "", "source", "list", "--output", "json").want(t, 0)
	var listed api.SourcesResponse
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed.Sources) != 2 ||
		listed.Sources[1].Status == nil || listed.Sources[1].Status.RepositoriesRead != 3 || listed.Sources[1].Username != "me" {
		t.Fatalf("source list json %q: %v", r.stdout, err)
	}
	r = e.run(t, "", "source", "refresh", "catalog").want(t, 0)
	if !strings.HasPrefix(r.stdout, "Refreshing source catalog...\n") || !strings.Contains(r.stdout, "complete    20") {
		t.Fatalf("source refresh catalog:\n%s", r.stdout)
	}
	// Every source; one sync fails: the table, then the error.
	r = e.run(t, "", "source", "refresh").want(t, 1)
	if !strings.Contains(r.stdout, "Refreshing source hub...") || !strings.Contains(r.stdout, "stale") ||
		!strings.Contains(r.stderr, "cimage: the sync failed: hub: GET /v2/_catalog: 503 Service Unavailable") {
		t.Fatalf("source refresh:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	e.run(t, "", "source", "refresh", "nope").want(t, 3)
	e.run(t, "", "source", "refresh", "a", "b").want(t, 2)
	r = e.run(t, "s3cret\n", "source", "add", "hub2", "https://r2.example", "--insecure", "--username", "me", "--password-stdin").want(t, 0)
	if r.stdout != "Added source hub2 (https://r2.example), signatures off\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if want := (api.Source{Name: "hub2", Location: "https://r2.example", Insecure: true, Username: "me", Password: "s3cret"}); len(fake.added) != 1 || !reflect.DeepEqual(fake.added[0], want) {
		t.Fatalf("added %+v, want %+v", fake.added, want)
	}
	// The trusted keys are read here and sent as PEM.
	keyFile := filepath.Join(t.TempDir(), "cosign.pub")
	os.WriteFile(keyFile, []byte("-----BEGIN PUBLIC KEY-----\nMFk=\n-----END PUBLIC KEY-----\n"), 0o644)
	e.run(t, "", "source", "add", "signed", "https://r3.example", "--trust-key", keyFile, "--signatures", "required").want(t, 0)
	if got := fake.added[1]; len(got.TrustKeys) != 1 || !strings.HasPrefix(got.TrustKeys[0], "-----BEGIN PUBLIC KEY-----") || got.Signatures != "required" {
		t.Fatalf("added %+v", got)
	}
	// Mirrors, with a password read from a file here.
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("m1rror\n"), 0o600)
	r = e.run(t, "", "source", "add", "fleet", "https://r4.example", "--mirror", "http://cache:5000", "--mirror",
		"https://m.example,insecure,username=ops,password-file="+pwFile+",capabilities=pull").want(t, 0)
	wantMirrors := []api.SourceMirror{{Location: "http://cache:5000"},
		{Location: "https://m.example", Insecure: true, Username: "ops", Password: "m1rror", Capabilities: []string{"pull"}}}
	if got := fake.added[2]; !reflect.DeepEqual(got.Mirrors, wantMirrors) {
		t.Fatalf("added mirrors %+v, want %+v", got.Mirrors, wantMirrors)
	}
	if want := "Added source fleet (https://r4.example), signatures off\n  mirror 1: http://cache:5000\n  mirror 2: https://m.example,insecure,username=ops,capabilities=pull\n"; r.stdout != want {
		t.Fatalf("stdout %q, want %q", r.stdout, want)
	}
	e.run(t, "", "source", "add", "x", "https://r3.example", "--mirror", "cache:5000").want(t, 2)
	e.run(t, "", "source", "add", "x", "https://r3.example", "--mirror", "http://m,username=u,password-file="+filepath.Join(t.TempDir(), "none")).want(t, 3)
	if len(fake.added) != 3 {
		t.Fatalf("a refused add reached providerd: %+v", fake.added[3:])
	}
	e.run(t, "", "source", "add", "x", "https://r3.example", "--signatures", "sometimes").want(t, 2)
	e.run(t, "", "source", "add", "x", "https://r3.example", "--trust-key", filepath.Join(t.TempDir(), "none.pub")).want(t, 3)
	e.run(t, "", "source", "add", "x", "http://x", "--username", "me").want(t, 2)
	e.run(t, "", "source", "add", "x", "http://x", "--password-stdin", "--username", "me").want(t, 2) // empty stdin
	e.run(t, "", "source", "add", "x").want(t, 2)
	fake.addSourceErr = fmt.Errorf("source %q: %w", "catalog", errdefs.ErrAlreadyExists)
	e.run(t, "", "source", "add", "catalog", "http://x").want(t, 4)

	r = e.run(t, "", "source", "remove", "hub").want(t, 0)
	if r.stdout != "Removed source hub\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if r = e.run(t, "", "--output", "json", "source", "remove", "hub").want(t, 0); r.stdout != "{\n  \"removed\": \"hub\"\n}\n" {
		t.Fatalf("json stdout %q", r.stdout)
	}
	e.run(t, "", "source", "remove", "nope").want(t, 3)
	e.run(t, "", "source").want(t, 2)
}

// TestToken: over TCP the token comes from --token, $CIMAGE_TOKEN or the
// first line of $CIMAGE_TOKEN_FILE, else of providerd's ROOT/auth/token;
// without it providerd answers 401, printed with a hint.
func TestToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	e := newEnv(t, &fakeBackend{}, providerserver.WithToken(token))
	r := e.run(t, "", "images").want(t, 1)
	if !strings.Contains(r.stderr, "(give the token with --token, $CIMAGE_TOKEN or $CIMAGE_TOKEN_FILE, or use providerd's unix socket)") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "--token", token, "images").want(t, 0)
	e.run(t, "", "images", "--token", token).want(t, 0)

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\nrest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.environ = map[string]string{"CIMAGE_TOKEN_FILE": file}
	e.run(t, "", "images").want(t, 0)
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "containerprovider", "providerd", "auth"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "containerprovider", "providerd", "auth", "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.environ = map[string]string{"XDG_DATA_HOME": data}
	e.run(t, "", "images").want(t, 0)
	e.environ = map[string]string{"XDG_DATA_HOME": data, "CIMAGE_TOKEN": "wrong-0123456789abcdef"}
	e.run(t, "", "images").want(t, 1)
}

func TestUsageAndHelp(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	r := e.run(t, "", "-h").want(t, 0)
	for _, want := range []string{"Exit codes:", "130", "CIMAGE_ENDPOINT", "CIMAGE_TOKEN", "jobs attach ID", "source add NAME URL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	r = e.run(t, "", "install", "-h").want(t, 0)
	if !strings.Contains(r.stdout, "-no-parents") || !strings.Contains(r.stdout, "-detach") {
		t.Fatalf("install -h:\n%s", r.stdout)
	}
	e.run(t, "").want(t, 2)
	e.run(t, "", "frobnicate").want(t, 2)
	e.run(t, "", "--output", "yaml", "images").want(t, 2)
	e.run(t, "", "--endpoint", "ftp://x", "images").want(t, 2)
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		all  bool
	}{
		{[]string{"a", "--all-versions", "b"}, []string{"a", "b"}, true},
		{[]string{"--all-versions", "a"}, []string{"a"}, true},
		{[]string{"a", "--", "--all-versions"}, []string{"a", "--all-versions"}, false},
		{nil, nil, false},
	} {
		var v versionFlags
		f := newTestFlagSet()
		v.register(f, &globals{})
		pos, err := parseInterspersed(f, tc.args)
		if err != nil || !reflect.DeepEqual(pos, tc.pos) || v.AllVersions != tc.all {
			t.Errorf("%q: %q all=%v, %v; want %q all=%v", tc.args, pos, v.AllVersions, err, tc.pos, tc.all)
		}
	}
}
