package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// layerOf returns the first layer of the manifest repo:tag.
func layerOf(t *testing.T, c *Client, repo, tag string) ocispec.Descriptor {
	t.Helper()
	_, body, err := c.Manifest(context.Background(), repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) == 0 {
		t.Fatalf("%s:%s has no layer", repo, tag)
	}
	return m.Layers[0]
}

func readBlob(t *testing.T, c *Client, repo string, d digest.Digest, offset int64) ([]byte, error) {
	t.Helper()
	rc, err := c.Blob(context.Background(), repo, d, offset)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// ignoreRange drops the Range header of requests, as a server without range
// support does.
func ignoreRange(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Range")
		next.ServeHTTP(w, r)
	})
}

func TestBlob(t *testing.T) {
	env := newCatalogEnv(t)
	log := logRequests(env.handler)
	c := newTestClient(t, serve(t, log).URL)
	layer := layerOf(t, c, "nanoserver", "10.0.10586.0")
	if layer.Size < 16 {
		t.Fatalf("layer of %d bytes: too small to test offsets", layer.Size)
	}
	blobPath := "/v2/nanoserver/blobs/" + layer.Digest.String()
	full, err := readBlob(t, c, "nanoserver", layer.Digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) != layer.Size || digest.FromBytes(full) != layer.Digest {
		t.Fatalf("%d bytes of digest %s, want %d of %s", len(full), digest.FromBytes(full), layer.Size, layer.Digest)
	}
	if s := log.lastStatus(blobPath); s != http.StatusOK {
		t.Errorf("status %d from offset 0, want 200", s)
	}

	noRange := logRequests(ignoreRange(env.handler))
	cNoRange := newTestClient(t, serve(t, noRange).URL)

	for _, tc := range []struct {
		name   string
		c      *Client
		log    *requestLog
		offset int64
		status int
	}{
		{name: "from an offset, 206", c: c, log: log, offset: layer.Size / 3, status: http.StatusPartialContent},
		{name: "last byte, 206", c: c, log: log, offset: layer.Size - 1, status: http.StatusPartialContent},
		{name: "from an offset, server ignores Range", c: cNoRange, log: noRange, offset: layer.Size / 3, status: http.StatusOK},
		{name: "at the end, server ignores Range", c: cNoRange, log: noRange, offset: layer.Size, status: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBlob(t, tc.c, "nanoserver", layer.Digest, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, full[tc.offset:]) {
				t.Errorf("%d bytes from offset %d differ from the blob's %d", len(got), tc.offset, len(full[tc.offset:]))
			}
			if s := tc.log.lastStatus(blobPath); s != tc.status {
				t.Errorf("status %d, want %d", s, tc.status)
			}
		})
	}

	unknown := digest.FromString("no such blob")
	for _, tc := range []struct {
		name   string
		c      *Client
		repo   string
		dgst   digest.Digest
		offset int64
		class  error
		says   string
	}{
		{name: "unknown blob", c: c, repo: "nanoserver", dgst: unknown, class: errdefs.ErrNotFound, says: "BLOB_UNKNOWN"},
		{name: "unknown repository", c: c, repo: "nosuchrepo", dgst: layer.Digest, class: errdefs.ErrNotFound},
		{name: "offset at the end", c: c, repo: "nanoserver", dgst: layer.Digest, offset: layer.Size, class: errdefs.ErrOutOfRange},
		{name: "offset past the end, server ignores Range", c: cNoRange, repo: "nanoserver", dgst: layer.Digest,
			offset: layer.Size + 1, class: errdefs.ErrOutOfRange, says: "past the end"},
		{name: "negative offset", c: c, repo: "nanoserver", dgst: layer.Digest, offset: -1, class: errdefs.ErrInvalidArgument},
		{name: "bad digest", c: c, repo: "nanoserver", dgst: "sha256:abc", class: errdefs.ErrInvalidArgument},
		{name: "bad repository", c: c, repo: "../x", dgst: layer.Digest, class: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readBlob(t, tc.c, tc.repo, tc.dgst, tc.offset)
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			for _, w := range []string{"source catalog", "repository " + tc.repo, "blob " + tc.dgst.String(), tc.says} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestBlobRedirect(t *testing.T) {
	env := newCatalogEnv(t)
	storage := logRequests(env.handler)
	storageURL := serve(t, storage).URL
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, storageURL+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		env.handler.ServeHTTP(w, r)
	})
	c := newTestClient(t, serve(t, front).URL)
	layer := layerOf(t, c, "nanoserver", "10.0.14393.0")
	full, err := readBlob(t, c, "nanoserver", layer.Digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(full) != layer.Digest {
		t.Fatalf("redirected blob has digest %s, want %s", digest.FromBytes(full), layer.Digest)
	}
	part, err := readBlob(t, c, "nanoserver", layer.Digest, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part, full[5:]) {
		t.Error("redirected range differs from the blob")
	}
	path := "/v2/nanoserver/blobs/" + layer.Digest.String()
	if n, s := storage.count(path), storage.lastStatus(path); n != 2 || s != http.StatusPartialContent {
		t.Errorf("storage saw %d requests, last status %d; want 2, 206", n, s)
	}
}

func TestBlobBadResponses(t *testing.T) {
	d := digest.FromString("blob")
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		offset  int64
		// open is the class of Blob's error, read the class of the
		// read's (nil: no error).
		open, read error
	}{
		{
			name: "Content-Range at another offset",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-9/10")
				w.WriteHeader(http.StatusPartialContent)
				_, _ = io.WriteString(w, "0123456789")
			},
			offset: 5, open: errdefs.ErrUnavailable,
		},
		{
			name: "206 without a Range",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-9/10")
				w.WriteHeader(http.StatusPartialContent)
			},
			open: errdefs.ErrUnavailable,
		},
		{
			name: "connection cut in the body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, "0123456789")
			},
			read: errdefs.ErrUnavailable,
		},
		{
			name: "connection cut before the offset",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, "0123456789")
			},
			offset: 100, open: errdefs.ErrUnavailable,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, serve(t, tc.handler).URL)
			rc, err := c.Blob(context.Background(), "repo", d, tc.offset)
			if tc.open != nil {
				if !errors.Is(err, tc.open) {
					t.Fatalf("Blob error %v, want class %v", err, tc.open)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.ReadAll(rc)
			if !errors.Is(err, tc.read) || !strings.Contains(err.Error(), "blob "+d.String()) {
				t.Fatalf("read error %v, want class %v naming the blob", err, tc.read)
			}
		})
	}
}

func TestBlobContext(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "0123456789")
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	c := newTestClient(t, serve(t, h).URL)
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := c.Blob(ctx, "repo", digest.FromString("x"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	<-started
	cancel()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, context.Canceled) || errdefs.IsUnavailable(err) {
		t.Fatalf("read error %v, want context.Canceled only", err)
	}
}
