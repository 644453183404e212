package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

const (
	testUser     = "pusher"
	testPassword = "correct horse battery staple"
)

// testEnv is a catalogd server on loopback over a real registry: a real
// content store and a real bbolt file in t.TempDir().
type testEnv struct {
	t   *testing.T
	srv *httptest.Server
	reg *catalog.Registry
	cs  content.Store
}

// testHtpasswd holds testUser, hashed at bcrypt's minimum cost so that the
// race detector does not make every push slow.
func testHtpasswd(t *testing.T) *Htpasswd {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHtpasswd(strings.NewReader(testUser + ":" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newTestEnv starts a server with testHtpasswd, then opts.
func newTestEnv(t *testing.T, opts ...Opt) *testEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := meta.Open(filepath.Join(dir, "catalog.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	reg := catalog.NewRegistry(cs, db)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(reg, append([]Opt{WithLogger(logger), WithHtpasswd(testHtpasswd(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testEnv{t: t, srv: srv, reg: reg, cs: cs}
}

// response is a response with its body read.
type response struct {
	*http.Response
	body []byte
}

type reqOpt func(*http.Request)

// withAuth sends testUser's credentials.
func withAuth() reqOpt { return func(r *http.Request) { r.SetBasicAuth(testUser, testPassword) } }

func withBasic(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// withUnknownLength sends the body chunked, with no Content-Length.
func withUnknownLength() reqOpt { return func(r *http.Request) { r.ContentLength = -1 } }

// do sends a request; path may be absolute or a Location header.
func (e *testEnv) do(method, path string, body io.Reader, opts ...reqOpt) response {
	e.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = e.srv.URL + path
	}
	req, err := http.NewRequest(method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	if req.ContentLength < 0 && body != nil {
		// Hide the length from the transport too.
		req.Body = io.NopCloser(struct{ io.Reader }{body})
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{Response: resp, body: b}
}

// wantStatus fails unless r has status.
func (r response) wantStatus(t *testing.T, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	if got := r.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Fatalf("%s %s: Docker-Distribution-API-Version %q", r.Request.Method, r.Request.URL.Path, got)
	}
	return r
}

// wantHeader fails unless header k of r is v.
func (r response) wantHeader(t *testing.T, k, v string) response {
	t.Helper()
	if got := r.Header.Get(k); got != v {
		t.Fatalf("%s %s: header %s = %q, want %q", r.Request.Method, r.Request.URL.Path, k, got, v)
	}
	return r
}

// wantError fails unless r is an OCI error envelope with status and code,
// and returns its first entry. A HEAD response must have no body.
func (r response) wantError(t *testing.T, status int, code string) errorEntry {
	t.Helper()
	r.wantStatus(t, status)
	if r.Request.Method == http.MethodHead {
		if len(r.body) != 0 {
			t.Fatalf("HEAD error with a body: %s", r.body)
		}
		return errorEntry{}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var eb errorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) != 1 {
		t.Fatalf("not an OCI error envelope (%v): %s", err, r.body)
	}
	if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		t.Fatalf("error %+v, want code %s with a message", eb.Errors[0], code)
	}
	return eb.Errors[0]
}

// pushBlob pushes b monolithically into repo and returns its digest.
func (e *testEnv) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b), withAuth()).
		wantStatus(e.t, http.StatusCreated)
	return d
}

// hasBlob reports whether repo serves blob d.
func (e *testEnv) hasBlob(repo string, d digest.Digest) bool {
	e.t.Helper()
	r := e.do(http.MethodHead, "/v2/"+repo+"/blobs/"+d.String(), nil)
	switch r.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	e.t.Fatalf("HEAD blob %s: %d", d, r.StatusCode)
	return false
}

// image is a small OCI image: its blobs and its manifest bytes.
type image struct {
	config   []byte
	layers   [][]byte
	manifest []byte
	digest   digest.Digest
}

// newImage builds an image with one layer of the given content, and the
// given subject and annotations.
func newImage(t *testing.T, layer string, subject *ocispec.Descriptor, annotations map[string]string) image {
	t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":["%s"]}}`,
		digest.FromString(layer)))
	img := image{config: cfg, layers: [][]byte{[]byte(layer)}}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg)),
		},
		Layers: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(layer), Size: int64(len(layer)),
		}},
		Subject:     subject,
		Annotations: annotations,
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.manifest = b
	img.digest = digest.FromBytes(b)
	return img
}

// push pushes the blobs of img, then its manifest under ref, and returns
// the manifest PUT's response.
func (e *testEnv) push(repo, ref string, img image) response {
	e.t.Helper()
	e.pushBlob(repo, img.config)
	for _, l := range img.layers {
		e.pushBlob(repo, l)
	}
	return e.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(img.manifest),
		withAuth(), withHeader("Content-Type", ocispec.MediaTypeImageManifest)).wantStatus(e.t, http.StatusCreated)
}

// startUpload opens an upload session and returns its Location.
func (e *testEnv) startUpload(repo string) string {
	e.t.Helper()
	r := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, withAuth()).
		wantStatus(e.t, http.StatusAccepted).
		wantHeader(e.t, "Range", "0-0")
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") || r.Header.Get("Docker-Upload-UUID") == "" ||
		!strings.HasSuffix(loc, r.Header.Get("Docker-Upload-UUID")) {
		e.t.Fatalf("upload Location %q, Docker-Upload-UUID %q", loc, r.Header.Get("Docker-Upload-UUID"))
	}
	return loc
}

// withDigest adds ?digest=d to a Location.
func withDigest(loc string, d digest.Digest) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + d.String()
}
