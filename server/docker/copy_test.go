package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestStatContainerPath(t *testing.T) {
	cf := newContainerFake()
	cf.ctrs = []api.Container{{ID: hex64('e'), Name: "c1", ImageDigest: "sha256:" + hex64('a'), State: api.ContainerCreated}}
	mtime := time.Date(2016, 10, 1, 12, 0, 0, 0, time.UTC)
	files := fstest.MapFS{
		"app/index.html": {Data: []byte("hello"), Mode: 0o644, ModTime: mtime},
		"app":            {Mode: fs.ModeDir | 0o755, ModTime: mtime},
	}
	cf.statFn = func(_ context.Context, ref, path string) (fs.FileInfo, error) {
		if ref != hex64('e') {
			t.Errorf("stat of container %q", ref)
		}
		if path == "/" {
			return fs.Stat(files, ".")
		}
		fi, err := fs.Stat(files, strings.TrimPrefix(path, "/"))
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", path, errdefs.ErrNotFound)
		}
		return fi, nil
	}
	e := newTestEnv(t, cf.fakeBackend)
	stat := func(path string) pathStat {
		t.Helper()
		r := e.do(t, http.MethodHead, "/v1.51/containers/c1/archive?path="+path)
		r.wantStatus(t, http.StatusOK)
		b, err := base64.StdEncoding.DecodeString(r.header.Get(headerPathStat))
		if err != nil {
			t.Fatalf("%s: %v", headerPathStat, err)
		}
		var st pathStat
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %s: %v", headerPathStat, b, err)
		}
		return st
	}
	if st := stat("/app"); st.Name != "app" || !st.Mode.IsDir() || !st.Mtime.Equal(mtime) {
		t.Errorf("stat /app: %+v", st)
	}
	if st := stat("/app/index.html"); st.Name != "index.html" || st.Size != 5 || !st.Mode.IsRegular() || st.Mode.Perm() != 0o644 {
		t.Errorf("stat /app/index.html: %+v", st)
	}
	if st := stat("/"); st.Name != "/" || !st.Mode.IsDir() {
		t.Errorf("stat /: %+v", st)
	}
	// HEAD answers carry no body: the status tells.
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/containers/c1/archive?path=/nothing", http.StatusNotFound},
		{"/containers/c1/archive", http.StatusBadRequest},
		{"/containers/nothere/archive?path=/", http.StatusNotFound},
	} {
		if r := e.do(t, http.MethodHead, tc.path); r.status != tc.status || r.header.Get(headerPathStat) != "" {
			t.Errorf("HEAD %s: %d, want %d", tc.path, r.status, tc.status)
		}
	}
}

func TestCopyToContainer(t *testing.T) {
	cf := newContainerFake()
	cf.ctrs = []api.Container{{ID: hex64('e'), Name: "c1", ImageDigest: "sha256:" + hex64('a'), State: api.ContainerCreated}}
	var got struct{ ref, dest, body string }
	cf.copyFn = func(_ context.Context, ref, dest string, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if string(b) == "bad" {
			return fmt.Errorf(`entry "../x": escapes the destination: %w`, errdefs.ErrInvalidArgument)
		}
		got.ref, got.dest, got.body = ref, dest, string(b)
		return nil
	}
	e := newTestEnv(t, cf.fakeBackend)
	put := func(path, body string) response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, e.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain") // what the docker CLI sends
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: b}
	}
	r := put("/v1.51/containers/"+hex64('e')[:6]+"/archive?path=/app&noOverwriteDirNonDir=true", "a tar")
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("PUT archive: %d %s", r.status, r.body)
	}
	if got.ref != hex64('e') || got.dest != "/app" || got.body != "a tar" {
		t.Fatalf("copy %+v", got)
	}
	put("/containers/c1/archive?path=/app", "bad").wantError(t, http.StatusBadRequest, "escapes the destination")
	put("/containers/c1/archive", "a tar").wantError(t, http.StatusBadRequest, "path cannot be empty")
	put("/containers/nothere/archive?path=/", "a tar").wantError(t, http.StatusNotFound, "No such container: nothere")
}
