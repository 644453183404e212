package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/server/listener"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
)

var nano = api.Image{Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft", IsOSImage: true,
	Digest: "sha256:" + strings.Repeat("ab", 32), ID: strings.Repeat("ab", 32)}

// postTar sends body to path as an application/x-tar request, or with the
// content type given.
func (e *testEnv) postTar(t *testing.T, method, path string, body io.Reader, contentType string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, body: data}
}

// TestSaveStream: a save without a path streams the archive with its file
// name, image headers and trailers, and the request reaches the backend
// whole.
func TestSaveStream(t *testing.T) {
	archive := bytes.Repeat([]byte("tar!"), 50000)
	var got api.SaveRequest
	e := newTestEnv(t, &fakeBackend{save: func(_ context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
		got = req
		w.(SaveStarter).BeginSave(nano)
		for chunk := range slicesChunk(archive, 32<<10) {
			if _, err := w.Write(chunk); err != nil {
				return api.Image{}, err
			}
		}
		return nano, nil
	}})
	req := api.SaveRequest{Name: "nanoserver", VersionOptions: api.VersionOptions{MinimumVersion: "10.0"}, Source: "catalog"}
	resp := e.do(t, http.MethodPost, "/v1/images/save", req).want(t, http.StatusOK)
	if got != req {
		t.Fatalf("backend got %+v, want %+v", got, req)
	}
	for k, want := range map[string]string{
		"Content-Type":        ContentTypeTar,
		"Content-Disposition": `attachment; filename="NanoServer-10-0-10586-0.tar"`,
		HeaderImageName:       "NanoServer",
		HeaderImageVersion:    "10.0.10586.0",
		HeaderImageDigest:     nano.Digest,
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("length %d, transfer encoding %v: want a chunked stream", resp.ContentLength, resp.TransferEncoding)
	}
	if !bytes.Equal(resp.body, archive) {
		t.Fatalf("body: %d bytes, want %d", len(resp.body), len(archive))
	}
	if resp.Trailer.Get(HeaderImageVersion) != "10.0.10586.0" || resp.Trailer.Get(HeaderImageDigest) != nano.Digest {
		t.Fatalf("trailers %v", resp.Trailer)
	}
}

// slicesChunk yields p in pieces of n bytes.
func slicesChunk(p []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(p) > 0 {
			k := min(n, len(p))
			if !yield(p[:k]) {
				return
			}
			p = p[k:]
		}
	}
}

// TestSaveFileNameWithoutBegin: a Save that never calls BeginSave still
// streams; the file name comes from the request when it names the name and
// the required version, and the trailers always name the image.
func TestSaveFileNameWithoutBegin(t *testing.T) {
	for _, tc := range []struct {
		name        string
		req         api.SaveRequest
		disposition string
	}{
		{"name and required version", api.SaveRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}, `attachment; filename="NanoServer-10-0-10586-0.tar"`},
		{"name alone", api.SaveRequest{Name: "NanoServer"}, "attachment"},
		{"id", api.SaveRequest{ID: "abab"}, "attachment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, &fakeBackend{save: func(_ context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
				_, err := io.WriteString(w, "archive")
				return nano, err
			}})
			resp := e.do(t, http.MethodPost, "/v1/images/save", tc.req).want(t, http.StatusOK)
			if d := resp.Header.Get("Content-Disposition"); d != tc.disposition {
				t.Fatalf("Content-Disposition %q, want %q", d, tc.disposition)
			}
			if string(resp.body) != "archive" || resp.Trailer.Get(HeaderImageName) != "NanoServer" {
				t.Fatalf("body %q, trailers %v", resp.body, resp.Trailer)
			}
		})
	}
}

func TestContentDisposition(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"none", "", "attachment"},
		{"plain", "NanoServer-10-0-10586-0.tar", `attachment; filename="NanoServer-10-0-10586-0.tar"`},
		{"space", "my image.tar", `attachment; filename="my image.tar"`},
		{"quote", `a"b.tar`, `attachment; filename="a\"b.tar"`},
		{"non-ASCII", "café.tar", "attachment; filename*=utf-8''caf%C3%A9.tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := contentDisposition(tc.in)
			if got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
			if tc.in == "" {
				return
			}
			_, params, err := mime.ParseMediaType(got)
			if err != nil || params["filename"] != tc.in {
				t.Fatalf("parsed back: %v, %v", params, err)
			}
		})
	}
}

// TestSaveFlushesAsItGoes: the client reads each piece before the backend
// writes the next one, so every piece must have been flushed on its own.
func TestSaveFlushesAsItGoes(t *testing.T) {
	next := make(chan struct{})
	e := newTestEnv(t, &fakeBackend{save: func(ctx context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
		w.(SaveStarter).BeginSave(nano)
		for i := range 3 {
			select {
			case <-next:
			case <-ctx.Done():
				return api.Image{}, ctx.Err()
			case <-time.After(guard):
				return api.Image{}, errors.New("the client read nothing")
			}
			if _, err := fmt.Fprintf(w, "piece %d;", i); err != nil {
				return api.Image{}, err
			}
		}
		return nano, nil
	}})
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/v1/images/save", strings.NewReader(`{"name":"NanoServer"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") == "" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	for i := range 3 {
		next <- struct{}{}
		want := fmt.Sprintf("piece %d;", i)
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != want {
			t.Fatalf("piece %d: %q, %v", i, buf, err)
		}
	}
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after the last piece: %q, %v", rest, err)
	}
}

// TestSaveFailureAfterBytesAborts: an engine error after the first byte
// cuts the connection, so the client cannot take the archive for whole;
// an error before it gets the envelope.
func TestSaveFailureAfterBytesAborts(t *testing.T) {
	t.Run("after bytes", func(t *testing.T) {
		e := newTestEnv(t, &fakeBackend{save: func(_ context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
			if _, err := w.Write(bytes.Repeat([]byte{1}, 100<<10)); err != nil {
				return api.Image{}, err
			}
			return api.Image{}, fmt.Errorf("blob sha256:ab: %w", errdefs.ErrNotFound)
		}})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/v1/images/save", strings.NewReader(`{"name":"NanoServer"}`))
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil {
			t.Fatalf("read %d bytes and a clean end: want the connection cut", n)
		}
		if !strings.Contains(e.logs.String(), "save stream aborted") {
			t.Fatalf("the abort was not logged: %s", e.logs.String())
		}
	})
	t.Run("after BeginSave", func(t *testing.T) {
		e := newTestEnv(t, &fakeBackend{save: func(_ context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
			w.(SaveStarter).BeginSave(nano)
			return api.Image{}, errors.New("disk on fire")
		}})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/v1/images/save", strings.NewReader(`{"name":"NanoServer"}`))
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Fatal("a clean empty archive: want the connection cut")
		}
	})
	t.Run("before any byte", func(t *testing.T) {
		e := newTestEnv(t, &fakeBackend{})
		e.do(t, http.MethodPost, "/v1/images/save", api.SaveRequest{Name: "Nope"}).wantError(t, http.StatusNotFound, "NotFound")
	})
}

func TestSaveToPath(t *testing.T) {
	var got []api.SaveRequest
	e := newTestEnv(t, &fakeBackend{saveToPath: func(_ context.Context, req api.SaveRequest, _ hostfs.FS) (api.SaveResult, error) {
		got = append(got, req)
		if strings.HasSuffix(req.Path, "exists.tar") && !req.Force {
			return api.SaveResult{}, fmt.Errorf("file %s exists; use force to overwrite it: %w", req.Path, errdefs.ErrAlreadyExists)
		}
		return api.SaveResult{Path: "/srv/NanoServer-10-0-10586-0.tar", Size: 4096, Image: nano}, nil
	}})
	req := api.SaveRequest{Name: "NanoServer", Path: "/srv", Force: true}
	var res api.SaveResult
	resp := e.do(t, http.MethodPost, "/v1/images/save", req).want(t, http.StatusOK)
	resp.decode(t, &res)
	if res.Path != "/srv/NanoServer-10-0-10586-0.tar" || res.Size != 4096 || res.Image.Name != "NanoServer" {
		t.Fatalf("result %+v", res)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	if len(got) != 1 || got[0] != req {
		t.Fatalf("backend got %+v", got)
	}
	e.do(t, http.MethodPost, "/v1/images/save", api.SaveRequest{Name: "NanoServer", Path: "/srv/exists.tar"}).wantError(t, http.StatusConflict, "AlreadyExists")

	for _, tc := range []struct {
		name, query string
		body        any
	}{
		{"relative path", "", api.SaveRequest{Name: "NanoServer", Path: "out/x.tar"}},
		{"force without a path", "", api.SaveRequest{Name: "NanoServer", Force: true}},
		{"unknown field", "", `{"name":"NanoServer","file":"/x"}`},
		{"unknown parameter", "?path=/srv", api.SaveRequest{Name: "NanoServer"}},
		{"malformed", "", `{"name":`},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			before := len(e.fake.called())
			e.do(t, http.MethodPost, "/v1/images/save"+tc.query, tc.body).wantError(t, http.StatusBadRequest, "InvalidArgument")
			if calls := e.fake.called(); len(calls) != before {
				t.Fatalf("backend called: %v", calls[before:])
			}
		})
	}
}

// TestSaveOutlivesWriteTimeout: a save longer than the server's
// WriteTimeout goes on, since each write moves the deadline.
func TestSaveOutlivesWriteTimeout(t *testing.T) {
	const short = 50 * time.Millisecond
	const pieces = 4
	backend := &fakeBackend{save: func(_ context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
		w.(SaveStarter).BeginSave(nano)
		for range pieces {
			time.Sleep(3 * short)
			if _, err := w.Write([]byte("0123456789")); err != nil {
				return api.Image{}, err
			}
		}
		return nano, nil
	}}
	srv := shortTimeoutServer(t, backend, short)
	resp, err := srv.Client().Post(srv.URL+"/v1/images/save", "application/json", strings.NewReader(`{"name":"NanoServer"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || len(data) != pieces*10 {
		t.Fatalf("read %d bytes: %v", len(data), err)
	}
}

// shortTimeoutServer serves backend with read and write timeouts of d.
func shortTimeoutServer(t *testing.T, backend Backend, d time.Duration) *httptest.Server {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(backend, WithLogger(logger), WithPolicy(listener.Open()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ReadTimeout = d
	srv.Config.WriteTimeout = d
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func TestLoad(t *testing.T) {
	archive := bytes.Repeat([]byte("layer"), 10000)
	hostArchive := filepath.Join(t.TempDir(), "nano.tar")
	if err := os.WriteFile(hostArchive, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo.tar")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var received []byte
	result := api.LoadResult{Images: []api.Image{nano}}
	backend := &fakeBackend{
		load: func(_ context.Context, r io.Reader) (api.LoadResult, error) {
			data, err := io.ReadAll(r)
			if err != nil {
				return api.LoadResult{}, fmt.Errorf("reading the archive: %w", err)
			}
			received = data
			if bytes.HasPrefix(data, []byte("evil")) {
				return api.LoadResult{}, fmt.Errorf("archive entry ../etc/passwd: escapes the archive: %w", errdefs.ErrInvalidArgument)
			}
			return result, nil
		},
		loadFile: func(_ context.Context, f *os.File, label string) (api.LoadResult, error) {
			data, err := io.ReadAll(f)
			if err != nil || label != hostArchive || !bytes.Equal(data, archive) {
				return api.LoadResult{}, fmt.Errorf("file %s: %d bytes, %v: %w", label, len(data), err, errdefs.ErrInvalidArgument)
			}
			return result, nil
		},
	}
	e := newTestEnv(t, backend, WithMaxArchiveSize(1<<20))

	t.Run("body", func(t *testing.T) {
		var got api.LoadResult
		e.postTar(t, http.MethodPost, "/v1/images/load", bytes.NewReader(archive), ContentTypeTar).want(t, http.StatusOK).decode(t, &got)
		if len(got.Images) != 1 || got.Images[0].Name != "NanoServer" || !bytes.Equal(received, archive) {
			t.Fatalf("result %+v, backend read %d bytes", got, len(received))
		}
	})
	t.Run("chunked body", func(t *testing.T) {
		received = nil
		body := io.MultiReader(bytes.NewReader(archive[:100]), bytes.NewReader(archive[100:])) // no length: chunked
		e.postTar(t, http.MethodPost, "/v1/images/load", body, "application/octet-stream").want(t, http.StatusOK)
		if !bytes.Equal(received, archive) {
			t.Fatalf("backend read %d bytes", len(received))
		}
	})
	t.Run("path on the host", func(t *testing.T) {
		var got api.LoadResult
		e.do(t, http.MethodPost, "/v1/images/load?path="+url.QueryEscape(hostArchive), nil).want(t, http.StatusOK).decode(t, &got)
		if len(got.Images) != 1 {
			t.Fatalf("result %+v", got)
		}
		before := len(e.fake.called())
		e.do(t, http.MethodPost, "/v1/images/load?path=/srv/none.tar", nil).wantError(t, http.StatusNotFound, "NotFound")
		// A FIFO is refused before the backend is called, without
		// waiting for a writer.
		e.do(t, http.MethodPost, "/v1/images/load?path="+url.QueryEscape(fifo), nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
		if calls := e.fake.called(); len(calls) != before {
			t.Fatalf("backend called: %v", calls[before:])
		}
	})
	t.Run("path over TCP", func(t *testing.T) {
		tcp := newTestEnv(t, backend, WithHostFS(callerFS))
		before := len(tcp.fake.called())
		tcp.do(t, http.MethodPost, "/v1/images/load?path="+url.QueryEscape(hostArchive), nil).wantError(t, http.StatusForbidden, "PermissionDenied")
		tcp.do(t, http.MethodPost, "/v1/images/save", api.SaveRequest{Name: "NanoServer", Path: "/srv"}).wantError(t, http.StatusForbidden, "PermissionDenied")
		if calls := tcp.fake.called(); len(calls) != before {
			t.Fatalf("backend called: %v", calls[before:])
		}
	})
	t.Run("bad archive", func(t *testing.T) {
		e.postTar(t, http.MethodPost, "/v1/images/load", strings.NewReader("evil tar"), ContentTypeTar).wantError(t, http.StatusBadRequest, "InvalidArgument")
	})
	t.Run("chunked body over the cap", func(t *testing.T) {
		big := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), strings.NewReader("one byte too many"))
		e.postTar(t, http.MethodPost, "/v1/images/load", big, ContentTypeTar).wantError(t, http.StatusRequestEntityTooLarge, "TooLarge")
	})
	for _, tc := range []struct {
		name, query, contentType string
		body                     string
	}{
		{"relative path", "?path=nano.tar", "", ""},
		{"empty path", "?path=", "", ""},
		{"path and a body", "?path=/srv/nano.tar", ContentTypeTar, "tar"},
		{"JSON body", "", "application/json", `{"path":"/srv/nano.tar"}`},
		{"no content type", "", "", "tar"},
		{"empty body", "", ContentTypeTar, ""},
		{"unknown parameter", "?file=/srv/nano.tar", "", ""},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			before := len(e.fake.called())
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			e.postTar(t, http.MethodPost, "/v1/images/load"+tc.query, body, tc.contentType).wantError(t, http.StatusBadRequest, "InvalidArgument")
			if calls := e.fake.called(); len(calls) != before {
				t.Fatalf("backend called: %v", calls[before:])
			}
		})
	}
}

// TestLoadRefusesALengthOverTheCap: a Content-Length over the default cap
// is refused before the backend reads anything.
func TestLoadRefusesALengthOverTheCap(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	for _, path := range []string{"/v1/images/load", "/v1/containers/web1/archive?path=/app"} {
		method := http.MethodPost
		if strings.Contains(path, "archive") {
			method = http.MethodPut
		}
		req := httptest.NewRequest(method, path, strings.NewReader("tiny"))
		req.Header.Set("Content-Type", ContentTypeTar)
		req.ContentLength = MaxArchiveSize + 1
		req.Header.Set("Content-Length", strconv.FormatInt(req.ContentLength, 10))
		rec := httptest.NewRecorder()
		e.s.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), `"TooLarge"`) {
			t.Fatalf("%s: status %d, body %s", path, rec.Code, rec.Body)
		}
	}
	if calls := e.fake.called(); len(calls) != 0 {
		t.Fatalf("backend called: %v", calls)
	}
}

// TestLoadOutlivesReadTimeout: an upload slower than the server's
// ReadTimeout goes on, since each read moves the deadline.
func TestLoadOutlivesReadTimeout(t *testing.T) {
	const short = 50 * time.Millisecond
	var n int
	srv := shortTimeoutServer(t, &fakeBackend{load: func(_ context.Context, r io.Reader) (api.LoadResult, error) {
		data, err := io.ReadAll(r)
		n = len(data)
		return api.LoadResult{Images: []api.Image{nano}}, err
	}}, short)
	pr, pw := io.Pipe()
	go func() {
		for range 4 {
			time.Sleep(3 * short)
			if _, err := pw.Write([]byte("0123456789")); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := srv.Client().Post(srv.URL+"/v1/images/load", ContentTypeTar, pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != 40 {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d after %d bytes: %s", resp.StatusCode, n, data)
	}
}
