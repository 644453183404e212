package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider"
)

// messages decodes a jsonmessage stream.
func messages(t *testing.T, body []byte) []jsonMessage {
	t.Helper()
	var out []jsonMessage
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var m jsonMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// lines renders messages as the CLI prints them without a terminal.
func lines(msgs []jsonMessage) []string {
	var out []string
	for _, m := range msgs {
		switch {
		case m.Error != "":
			out = append(out, "error: "+m.Error)
		case m.ID != "":
			out = append(out, m.ID+": "+m.Status)
		default:
			out = append(out, m.Status)
		}
	}
	return out
}

func TestPull(t *testing.T) {
	layer := "sha256:" + hex64('1')
	present := "sha256:" + hex64('2')
	config := "sha256:" + hex64('3')
	result := sampleImages()[0]
	running := api.Job{ID: "j1", State: api.JobRunning}
	events := func(final api.Job) []api.JobEvent {
		return []api.JobEvent{
			{Type: api.EventState, State: api.JobRunning, Job: &running},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: present, Total: 10, Done: 10, State: "present"}},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: layer, Kind: "layer", Total: 100, State: "waiting"}},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: config, Kind: "config", Total: 5, State: "waiting"}},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: config, Kind: "config", Total: 5, Done: 5, State: "done"}},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: layer, Total: 100, Done: 40, State: "downloading"}},
			{Type: api.EventProgress, Blob: &api.BlobProgress{Digest: layer, Total: 100, Done: 100, State: "done"}},
			{Type: api.EventResult, State: final.State, Job: &final},
		}
	}
	blobs := []api.BlobProgress{{Digest: layer, Kind: "layer", State: "done"}, {Digest: config, Kind: "config", State: "done"}, {Digest: present, State: "present"}}
	for _, tc := range []struct {
		name, query string
		install     api.Job
		events      []api.JobEvent
		wantInstall string
		want        []string
	}{
		{
			name: "download", query: "fromImage=docker.io/library/nanoserver&tag=10.0.10586.0",
			install: running, wantInstall: "Install nanoserver 10.0.10586.0",
			events: events(api.Job{ID: "j1", State: api.JobSucceeded, Blobs: blobs, Result: &result}),
			want: []string{
				"10.0.10586.0: Pulling from library/nanoserver",
				"222222222222: Already exists",
				"111111111111: Pulling fs layer",
				"111111111111: Downloading",
				"111111111111: Verifying Checksum",
				"111111111111: Download complete",
				"111111111111: Pull complete",
				"Digest: " + result.Digest,
				"Status: Downloaded newer image for nanoserver:10.0.10586.0",
			},
		},
		{
			name: "up to date", query: "fromImage=microsoft/iis&tag=latest",
			install:     api.Job{ID: "j2", State: api.JobSucceeded, Result: &result, Message: "microsoft/iis 1.0.0.0 is already installed."},
			wantInstall: "Install microsoft/iis ",
			want: []string{
				"latest: Pulling from microsoft/iis",
				"Digest: " + result.Digest,
				"Status: Image is up to date for microsoft/iis:latest",
			},
		},
		{
			name: "tag inside fromImage", query: "fromImage=nanoserver:10.0.14393.0",
			install:     api.Job{ID: "j3", State: api.JobSucceeded, Result: &result},
			wantInstall: "Install nanoserver 10.0.14393.0",
			want: []string{
				"10.0.14393.0: Pulling from library/nanoserver",
				"Digest: " + result.Digest,
				"Status: Image is up to date for nanoserver:10.0.14393.0",
			},
		},
		{
			name: "failure", query: "fromImage=nanoserver&tag=latest",
			install: running, wantInstall: "Install nanoserver ",
			events: events(api.Job{ID: "j1", State: api.JobFailed, Error: &api.Error{Code: "Unavailable", Message: "source catalog: connection refused"}}),
			want: []string{
				"latest: Pulling from library/nanoserver",
				"222222222222: Already exists",
				"111111111111: Pulling fs layer",
				"111111111111: Downloading",
				"111111111111: Verifying Checksum",
				"111111111111: Download complete",
				"error: source catalog: connection refused",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBackend{
				installFn: func(context.Context, api.InstallRequest) (api.Job, error) { return tc.install, nil },
				watchFn: func(context.Context, string) (<-chan api.JobEvent, error) {
					ch := make(chan api.JobEvent, len(tc.events))
					for _, ev := range tc.events {
						ch <- ev
					}
					close(ch)
					return ch, nil
				},
			}
			e := newTestEnv(t, f)
			r := e.do(t, http.MethodPost, "/v1.50/images/create?"+tc.query)
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, %s", r.status, r.body)
			}
			msgs := messages(t, r.body)
			if got := lines(msgs); !slices.Equal(got, tc.want) {
				t.Fatalf("stream\n%q\nwant\n%q", got, tc.want)
			}
			for _, m := range msgs {
				if m.Status == "Downloading" && (m.ProgressDetail == nil || *m.ProgressDetail != (jsonProgress{Current: 40, Total: 100})) {
					t.Errorf("Downloading without its progressDetail: %+v", m)
				}
				if m.Error != "" && (m.ErrorDetail == nil || m.ErrorDetail.Message != m.Error) {
					t.Errorf("error without its errorDetail: %+v", m)
				}
			}
			if calls := f.called(); len(calls) == 0 || calls[0] != tc.wantInstall {
				t.Fatalf("calls %q, want %q first", calls, tc.wantInstall)
			}
		})
	}
}

func TestPullRefused(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	e.do(t, http.MethodPost, "/images/create?fromImage=nothere&tag=latest").wantError(t, http.StatusNotFound, "image nothere")
	e.do(t, http.MethodPost, "/images/create").wantError(t, http.StatusBadRequest, "fromImage is required")
	e.do(t, http.MethodPost, "/images/create?fromImage=Bad").wantError(t, http.StatusBadRequest, "invalid reference format")
	e.do(t, http.MethodPost, "/images/create?fromSrc=-").wantError(t, http.StatusNotImplemented, "fromSrc")
	e.do(t, http.MethodPost, "/images/create?fromImage=nanoserver&tag=sha256:"+hex64('a')).wantError(t, http.StatusNotImplemented, "pulling by digest")
}

// TestPullNoMatch checks that an image no source has is Docker's
// "manifest ... not found", without the provider's cmdlet hint.
func TestPullNoMatch(t *testing.T) {
	f := &fakeBackend{installFn: func(_ context.Context, req api.InstallRequest) (api.Job, error) {
		return api.Job{}, find.NoMatch(req.Name, req.RequiredVersion)
	}}
	e := newTestEnv(t, f)
	for _, tc := range []struct{ path, want string }{
		{"/v1.51/images/create?fromImage=nosuch&tag=latest", "manifest for nosuch:latest not found: manifest unknown"},
		{"/v1.51/images/create?fromImage=nanoserver&tag=9.9", "manifest for nanoserver:9.9 not found: manifest unknown"},
	} {
		r := e.do(t, http.MethodPost, tc.path)
		r.wantError(t, http.StatusNotFound, tc.want)
		if strings.Contains(string(r.body), "Get-") || strings.Contains(string(r.body), "cimage") {
			t.Errorf("%s: %s", tc.path, r.body)
		}
	}
	r := e.doBody(t, http.MethodPost, "/v1.51/containers/create", `{"Image":"nosuch"}`)
	r.wantError(t, http.StatusNotFound, "manifest for nosuch:latest not found")
	if strings.Contains(string(r.body), "Get-") {
		t.Errorf("create: %s", r.body)
	}
}

// TestPullRestoresRefs checks that a pull of an installed image without
// refs (untagged by docker rmi -f for its containers) gives them back.
func TestPullRestoresRefs(t *testing.T) {
	untagged := sampleImages()[0]
	untagged.Refs = nil
	tagged := sampleImages()[0]
	var restored []string
	f := &fakeBackend{
		installFn: func(context.Context, api.InstallRequest) (api.Job, error) {
			return api.Job{ID: "j1", State: api.JobSucceeded, Result: &untagged}, nil
		},
		restoreFn: func(_ context.Context, image string) ([]string, error) {
			restored = append(restored, image)
			return tagged.Refs, nil
		},
	}
	e := newTestEnv(t, f)
	r := e.do(t, http.MethodPost, "/v1.51/images/create?fromImage=nanoserver&tag=10.0.10586.0")
	if msgs := lines(messages(t, r.body)); r.status != http.StatusOK || msgs[len(msgs)-1] != "Status: Image is up to date for nanoserver:10.0.10586.0" {
		t.Fatalf("pull: %d %q", r.status, msgs)
	}
	if !slices.Equal(restored, []string{untagged.Digest}) {
		t.Fatalf("restored %q", restored)
	}
	// An image with its refs is left alone.
	f.installFn = func(context.Context, api.InstallRequest) (api.Job, error) {
		return api.Job{ID: "j2", State: api.JobSucceeded, Result: &tagged}, nil
	}
	e.do(t, http.MethodPost, "/v1.51/images/create?fromImage=nanoserver&tag=10.0.10586.0").wantStatus(t, http.StatusOK)
	if len(restored) != 1 {
		t.Fatalf("restored %q", restored)
	}
}

func TestWithoutClientHints(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"OneGet's hint", find.NoMatch("nosuch", "").Error(), "No match was found for the specified search criteria and package name 'nosuch'."},
		{"a cimage hint", "image x is not installed. Run cimage images to list them. It was removed.", "image x is not installed. It was removed."},
		{"a cmdlet in the first sentence stays", "Remove-ContainerImage refused. Try Get-ContainerImage.", "Remove-ContainerImage refused."},
		{"no hint", "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is being used by stopped container c1", "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is being used by stopped container c1"},
		{"a flag is no command", "file x exists; use --force to overwrite: already exists", "file x exists; use --force to overwrite: already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := withoutClientHints(tc.in); got != tc.want {
				t.Fatalf("withoutClientHints(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	// Through the adapter: an error of any handler.
	f := &fakeBackend{imagesFn: func(context.Context, provider.GetOptions) ([]api.Image, error) {
		return nil, find.NoMatch("x", "")
	}}
	e := newTestEnv(t, f)
	r := e.do(t, http.MethodGet, "/images/json")
	r.wantError(t, http.StatusNotFound, "package name 'x'.")
	if strings.Contains(string(r.body), "Get-PackageSource") {
		t.Fatalf("body %s", r.body)
	}
}
