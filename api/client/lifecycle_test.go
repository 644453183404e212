package client

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

var nanoImage = api.Image{Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft", IsOSImage: true,
	Digest: "sha256:" + strings.Repeat("ab", 32)}

// streamArchive answers a save with archive in pieces, flushed, with the
// file name and image in the headers when begin, and always in the
// trailers; with cut, the connection is cut after the first piece.
func streamArchive(archive []byte, begin, cut bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ContentTypeTar)
		if begin {
			h.Set("Content-Disposition", `attachment; filename="NanoServer-10-0-10586-0.tar"`)
			h.Set(headerImageName, nanoImage.Name)
			h.Set(headerImageVersion, nanoImage.Version)
		} else {
			h.Set("Content-Disposition", "attachment")
		}
		w.WriteHeader(http.StatusOK)
		for len(archive) > 0 {
			n := min(len(archive), 1000)
			_, _ = w.Write(archive[:n])
			_ = http.NewResponseController(w).Flush()
			archive = archive[n:]
			if cut {
				panic(http.ErrAbortHandler)
			}
		}
		h.Set(http.TrailerPrefix+headerImageName, nanoImage.Name)
		h.Set(http.TrailerPrefix+headerImageVersion, nanoImage.Version)
		h.Set(http.TrailerPrefix+headerImageDigest, nanoImage.Digest)
	}
}

func TestSave(t *testing.T) {
	archive := bytes.Repeat([]byte("0123456789"), 1000)
	for _, tc := range []struct {
		name     string
		begin    bool
		fileName string
	}{
		{"with the image in the headers", true, "NanoServer-10-0-10586-0.tar"},
		{"with the image in the trailers only", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, map[string]http.HandlerFunc{"POST /v1/images/save": streamArchive(archive, tc.begin, false)})
			c := newClient(t, ts)
			s, err := c.Save(t.Context(), api.SaveRequest{Name: "NanoServer", Source: "catalog"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.FileName != tc.fileName || s.Size != -1 {
				t.Fatalf("file name %q size %d, want %q and -1", s.FileName, s.Size, tc.fileName)
			}
			if got := ts.last(t).body; strings.TrimSpace(got) != `{"name":"NanoServer","source":"catalog"}` {
				t.Fatalf("request %s", got)
			}
			if tc.begin && s.Image().Version != nanoImage.Version {
				t.Fatalf("image before the end: %+v", s.Image())
			}
			data, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(data, archive) {
				t.Fatalf("read %d bytes: %v", len(data), err)
			}
			img := s.Image()
			if img.Name != "NanoServer" || img.Version != "10.0.10586.0" || img.Digest != nanoImage.Digest || img.ID != strings.Repeat("ab", 32) {
				t.Fatalf("image %+v", img)
			}
		})
	}
	t.Run("cut", func(t *testing.T) {
		ts := newTestServer(t, map[string]http.HandlerFunc{"POST /v1/images/save": streamArchive(archive, true, true)})
		s, err := newClient(t, ts).Save(t.Context(), api.SaveRequest{Name: "NanoServer"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n, err := io.Copy(io.Discard, s)
		if err == nil || !strings.Contains(err.Error(), "did not arrive whole") {
			t.Fatalf("read %d bytes, error %v: want an error", n, err)
		}
	})
	t.Run("error before the stream", func(t *testing.T) {
		ts := newTestServer(t, map[string]http.HandlerFunc{
			"POST /v1/images/save": answer(404, api.ErrorResponse{Error: api.Error{Code: "NotFound", Message: `image "Nope": not found`}}),
		})
		if _, err := newClient(t, ts).Save(t.Context(), api.SaveRequest{Name: "Nope"}); !errdefs.IsNotFound(err) || err.Error() != `image "Nope": not found` {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a path goes with SaveToPath", func(t *testing.T) {
		ts := newTestServer(t, nil)
		c := newClient(t, ts)
		if _, err := c.Save(t.Context(), api.SaveRequest{Name: "NanoServer", Path: "/srv"}); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error %v", err)
		}
		if _, err := c.SaveToPath(t.Context(), api.SaveRequest{Name: "NanoServer"}); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error %v", err)
		}
		if n := ts.count(); n != 0 {
			t.Fatalf("%d requests sent", n)
		}
	})
	t.Run("a file name never carries a directory", func(t *testing.T) {
		ts := newTestServer(t, map[string]http.HandlerFunc{"POST /v1/images/save": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Disposition", `attachment; filename="../../etc/evil.tar"`)
			_, _ = io.WriteString(w, "x")
		}})
		s, err := newClient(t, ts).Save(t.Context(), api.SaveRequest{Name: "NanoServer"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.FileName != "evil.tar" {
			t.Fatalf("file name %q", s.FileName)
		}
	})
}

// count is the number of requests so far.
func (ts *testServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.reqs)
}

// tarRequest is an upload as the test server saw it.
type tarRequest struct {
	method, path  string
	query         url.Values
	contentType   string
	contentLength int64
	body          []byte
}

// recordUploads answers with status and v, and records the uploads.
func recordUploads(mu *sync.Mutex, got *[]tarRequest, status int, v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		*got = append(*got, tarRequest{r.Method, r.URL.Path, r.URL.Query(), r.Header.Get("Content-Type"), r.ContentLength, body})
		mu.Unlock()
		if v == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, v)
	}
}

func TestLoad(t *testing.T) {
	var mu sync.Mutex
	var uploads []tarRequest
	result := api.LoadResult{Images: []api.Image{nanoImage}}
	srv := newTestServer(t, map[string]http.HandlerFunc{"POST /v1/images/load": recordUploads(&mu, &uploads, 200, result)})
	c := newClient(t, srv)

	file := filepath.Join(t.TempDir(), "nano.tar")
	archive := bytes.Repeat([]byte("tar"), 5000)
	if err := os.WriteFile(file, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := c.Load(t.Context(), f)
	if err != nil || len(res.Images) != 1 || res.Images[0].Name != "NanoServer" {
		t.Fatalf("%+v %v", res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	up := uploads[0]
	if up.contentType != ContentTypeTar || up.contentLength != int64(len(archive)) || !bytes.Equal(up.body, archive) || len(up.query) != 0 {
		t.Fatalf("upload: type %q length %d, %d bytes, query %v", up.contentType, up.contentLength, len(up.body), up.query)
	}

	// A reader of unknown length is sent chunked.
	mu.Unlock()
	if _, err := c.Load(t.Context(), io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd"))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if up := uploads[1]; up.contentLength != -1 || string(up.body) != "abcd" {
		t.Fatalf("chunked upload: length %d, body %q", up.contentLength, up.body)
	}

	mu.Unlock()
	if _, err := c.LoadFile(t.Context(), "/srv/nano.tar"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if up := uploads[2]; up.query.Get("path") != "/srv/nano.tar" || len(up.body) != 0 {
		t.Fatalf("load file: query %v, body %q", up.query, up.body)
	}
	if _, err := c.LoadFile(t.Context(), ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty path: %v", err)
	}
}

func TestReaderSize(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	section := io.NewSectionReader(bytes.NewReader(make([]byte, 50)), 0, 50)
	_, _ = section.Seek(5, io.SeekStart)
	for _, tc := range []struct {
		name string
		r    io.Reader
		want int64
	}{
		{"bytes", bytes.NewReader(make([]byte, 7)), 7},
		{"strings", strings.NewReader("abc"), 3},
		{"file from its offset", f, 90},
		{"directory", dir, -1},
		{"section from its offset", section, 45},
		{"pipe", io.MultiReader(), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readerSize(tc.r); got != tc.want {
				t.Fatalf("size %d, want %d", got, tc.want)
			}
		})
	}
}

func TestContainerRequests(t *testing.T) {
	web1 := api.Container{ID: strings.Repeat("0c", 32), Name: "web1", Image: "NanoServer 10.0.10586.0", ParentImageName: "NanoServer", State: api.ContainerCreated}
	running := web1
	running.State = api.ContainerRunning
	var mu sync.Mutex
	var uploads []tarRequest
	ts := newTestServer(t, map[string]http.HandlerFunc{
		"GET /v1/containers":                 answer(200, containersResponse{Containers: []api.Container{web1}}),
		"POST /v1/containers":                answer(201, web1),
		"GET /v1/containers/web1":            answer(200, web1),
		"POST /v1/containers/web1/start":     answer(200, running),
		"POST /v1/containers/web1/stop":      answer(200, web1),
		"DELETE /v1/containers/web1":         func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
		"PUT /v1/containers/web1/archive":    recordUploads(&mu, &uploads, 200, nil),
		"PUT /v1/containers/a b/archive":     recordUploads(&mu, &uploads, 204, nil),
		"POST /v1/images/commit":             answer(201, api.Image{Name: "DemoImage", Version: "1.0.0.0", Publisher: "CN=Demo"}),
		"DELETE /v1/containers/running":      answer(409, api.ErrorResponse{Error: api.Error{Code: "Conflict", Message: "container running is running"}}),
		"GET /v1/containers/" + web1.ID[:12]: answer(200, web1),
	})
	c := newClient(t, ts, WithToken("s3cret"))
	ctx := t.Context()
	check := func(t *testing.T, method, path string, query url.Values, body string) {
		t.Helper()
		got := ts.last(t)
		if got.method != method || got.path != path || got.auth != "Bearer s3cret" {
			t.Fatalf("request %s %s auth %q, want %s %s with the token", got.method, got.path, got.auth, method, path)
		}
		if query == nil {
			query = url.Values{}
		}
		if got.query.Encode() != query.Encode() {
			t.Fatalf("query %q, want %q", got.query.Encode(), query.Encode())
		}
		if strings.TrimSpace(got.body) != body {
			t.Fatalf("body %q, want %q", got.body, body)
		}
	}

	list, err := c.Containers(ctx)
	if err != nil || len(list) != 1 || list[0].ParentImageName != "NanoServer" {
		t.Fatalf("%+v %v", list, err)
	}
	check(t, "GET", "/v1/containers", nil, "")
	created, err := c.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "web1"})
	if err != nil || created.ID != web1.ID {
		t.Fatalf("%+v %v", created, err)
	}
	check(t, "POST", "/v1/containers", nil, `{"image":"NanoServer","name":"web1"}`)
	got, err := c.Container(ctx, web1.ID[:12])
	if err != nil || got.Name != "web1" {
		t.Fatalf("%+v %v", got, err)
	}
	check(t, "GET", "/v1/containers/"+web1.ID[:12], nil, "")
	if got, err = c.StartContainer(ctx, "web1"); err != nil || got.State != api.ContainerRunning {
		t.Fatalf("%+v %v", got, err)
	}
	check(t, "POST", "/v1/containers/web1/start", nil, "")
	if got, err = c.StopContainer(ctx, "web1"); err != nil || got.State != api.ContainerCreated {
		t.Fatalf("%+v %v", got, err)
	}
	check(t, "POST", "/v1/containers/web1/stop", nil, "")
	if err := c.RemoveContainer(ctx, "web1", true); err != nil {
		t.Fatal(err)
	}
	check(t, "DELETE", "/v1/containers/web1", url.Values{"force": {"true"}}, "")
	err = c.RemoveContainer(ctx, "running", false)
	check(t, "DELETE", "/v1/containers/running", url.Values{"force": {"false"}}, "")
	var ce *Error
	if !errdefs.IsConflict(err) || !errors.As(err, &ce) || ce.StatusCode != 409 {
		t.Fatalf("removing a running container: %v", err)
	}

	for _, ref := range []string{"web1", "a b"} {
		if err := c.CopyToContainer(ctx, ref, "/app dir", strings.NewReader("tar bytes")); err != nil {
			t.Fatalf("copy into %s: %v", ref, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, up := range uploads {
		if up.method != "PUT" || up.query.Get("path") != "/app dir" || up.contentType != ContentTypeTar || up.contentLength != 9 || string(up.body) != "tar bytes" {
			t.Fatalf("upload %d: %+v", i, up)
		}
	}

	img, err := c.Commit(ctx, api.CommitRequest{Container: "web1", Name: "DemoImage", Publisher: "Demo", Version: "1.0"})
	if err != nil || img.Publisher != "CN=Demo" {
		t.Fatalf("%+v %v", img, err)
	}
	check(t, "POST", "/v1/images/commit", nil, `{"container":"web1","name":"DemoImage","publisher":"Demo","version":"1.0"}`)

	before := ts.count()
	for name, err := range map[string]error{
		"get":    func() error { _, err := c.Container(ctx, ""); return err }(),
		"start":  func() error { _, err := c.StartContainer(ctx, ""); return err }(),
		"stop":   func() error { _, err := c.StopContainer(ctx, ""); return err }(),
		"remove": c.RemoveContainer(ctx, "", false),
		"copy":   c.CopyToContainer(ctx, "", "/app", strings.NewReader("x")),
		"dest":   c.CopyToContainer(ctx, "web1", "", strings.NewReader("x")),
	} {
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s with an empty ref: %v", name, err)
		}
	}
	if n := ts.count(); n != before {
		t.Fatalf("%d requests sent for empty refs", n-before)
	}
}
