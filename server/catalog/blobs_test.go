package catalog

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPing(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(http.MethodGet, "/v2/", nil, withAuth()).wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", "application/json")
	if string(r.body) != "{}" {
		t.Fatalf("ping body %q", r.body)
	}
	if _, ok := r.Header["Www-Authenticate"]; ok {
		t.Fatal("a ping with the right credentials got a challenge")
	}
	if h := e.do(http.MethodHead, "/v2/", nil, withAuth()).wantStatus(t, http.StatusOK); len(h.body) != 0 {
		t.Fatal("HEAD /v2/ with a body")
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Fatal("no request id in the response")
	}
}

// TestBlobRoundTrip pushes a blob monolithically, reads it with GET and
// HEAD, deletes it and checks it is gone.
func TestBlobRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	blob := bytes.Repeat([]byte("catalogd "), 1000)
	d := digest.FromBytes(blob)

	r := e.do(http.MethodPost, "/v2/nanoserver/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob), withAuth()).
		wantStatus(t, http.StatusCreated).
		wantHeader(t, "Location", "/v2/nanoserver/blobs/"+d.String()).
		wantHeader(t, "Docker-Content-Digest", d.String())

	get := e.do(http.MethodGet, r.Header.Get("Location"), nil).
		wantStatus(t, http.StatusOK).
		wantHeader(t, "Docker-Content-Digest", d.String()).
		wantHeader(t, "Content-Type", "application/octet-stream").
		wantHeader(t, "ETag", `"`+d.String()+`"`).
		wantHeader(t, "Content-Length", strconv.Itoa(len(blob)))
	if !bytes.Equal(get.body, blob) {
		t.Fatalf("GET returned %d bytes, not the blob", len(get.body))
	}
	head := e.do(http.MethodHead, "/v2/nanoserver/blobs/"+d.String(), nil).
		wantStatus(t, http.StatusOK).
		wantHeader(t, "Docker-Content-Digest", d.String()).
		wantHeader(t, "Content-Length", strconv.Itoa(len(blob)))
	if len(head.body) != 0 {
		t.Fatal("HEAD with a body")
	}
	// A conditional GET with the ETag gets 304.
	e.do(http.MethodGet, "/v2/nanoserver/blobs/"+d.String(), nil, withHeader("If-None-Match", `"`+d.String()+`"`)).
		wantStatus(t, http.StatusNotModified)

	// Another repository does not serve it.
	e.do(http.MethodGet, "/v2/other/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, CodeBlobUnknown)

	e.do(http.MethodDelete, "/v2/nanoserver/blobs/"+d.String(), nil, withAuth()).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodGet, "/v2/nanoserver/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, CodeBlobUnknown)
	e.do(http.MethodHead, "/v2/nanoserver/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, CodeBlobUnknown)
	e.do(http.MethodDelete, "/v2/nanoserver/blobs/"+d.String(), nil, withAuth()).wantError(t, http.StatusNotFound, CodeBlobUnknown)
}

func TestBlobRange(t *testing.T) {
	e := newTestEnv(t)
	blob := make([]byte, 1000)
	for i := range blob {
		blob[i] = byte(i % 251)
	}
	d := e.pushBlob("r", blob)
	path := "/v2/r/blobs/" + d.String()
	for _, tc := range []struct {
		name         string
		rng          string
		contentRange string
		want         []byte
	}{
		{"first and last", "bytes=100-199", "bytes 100-199/1000", blob[100:200]},
		{"open end", "bytes=900-", "bytes 900-999/1000", blob[900:]},
		{"suffix", "bytes=-50", "bytes 950-999/1000", blob[950:]},
		{"end past the size is cut", "bytes=990-5000", "bytes 990-999/1000", blob[990:]},
		{"resume from an offset", "bytes=500-", "bytes 500-999/1000", blob[500:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, path, nil, withHeader("Range", tc.rng)).
				wantStatus(t, http.StatusPartialContent).
				wantHeader(t, "Content-Range", tc.contentRange).
				wantHeader(t, "Docker-Content-Digest", d.String())
			if !bytes.Equal(r.body, tc.want) {
				t.Fatalf("body of %d bytes, want %d", len(r.body), len(tc.want))
			}
		})
	}
	for _, tc := range []struct{ name, rng string }{
		{"start after end", "bytes=500-0"},
		{"beyond the blob", "bytes=5000-10000"},
		{"not bytes", "items=0-10"},
		{"garbage", "bytes=abc"},
		{"negative suffix", "bytes=--5"},
	} {
		t.Run("bad "+tc.name, func(t *testing.T) {
			e.do(http.MethodGet, path, nil, withHeader("Range", tc.rng)).
				wantHeader(t, "Content-Range", "bytes */1000").
				wantError(t, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
		})
	}
	t.Run("If-Range that does not match sends the whole blob", func(t *testing.T) {
		r := e.do(http.MethodGet, path, nil, withHeader("Range", "bytes=5000-6000"), withHeader("If-Range", `"sha256:other"`)).
			wantStatus(t, http.StatusOK)
		if !bytes.Equal(r.body, blob) {
			t.Fatal("not the whole blob")
		}
	})
}

// TestSHA512Blob pushes blobs by sha512 digest, monolithically and in an
// upload session, and reads them back.
func TestSHA512Blob(t *testing.T) {
	e := newTestEnv(t)
	blob := []byte("a blob named by its sha512 digest")
	sum := sha512.Sum512(blob)
	d := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))

	e.do(http.MethodPost, "/v2/r/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob), withAuth()).
		wantStatus(t, http.StatusCreated).
		wantHeader(t, "Docker-Content-Digest", d.String())
	r := e.do(http.MethodGet, "/v2/r/blobs/"+d.String(), nil).
		wantStatus(t, http.StatusOK).
		wantHeader(t, "Docker-Content-Digest", d.String())
	if !bytes.Equal(r.body, blob) {
		t.Fatal("sha512 blob content differs")
	}

	blob2 := []byte("another one, through an upload session")
	sum2 := sha512.Sum512(blob2)
	d2 := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum2[:]))
	loc := e.startUpload("r")
	e.do(http.MethodPut, withDigest(loc, d2), bytes.NewReader(blob2), withAuth()).
		wantStatus(t, http.StatusCreated).
		wantHeader(t, "Location", "/v2/r/blobs/"+d2.String())
	if !e.hasBlob("r", d2) {
		t.Fatal("sha512 upload not committed")
	}
}

// TestDigestValidation checks that malformed or unsupported digests are
// refused before any store call.
func TestDigestValidation(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		name, digest string
		isTag        bool // a valid tag on the manifests route
	}{
		{name: "short", digest: "sha256:abc"},
		{name: "upper case hex", digest: "sha256:" + strings.Repeat("AB", 32)},
		{name: "no algorithm", digest: strings.Repeat("ab", 32), isTag: true},
		{name: "unsupported algorithm", digest: "sha384:" + strings.Repeat("ab", 48)},
		{name: "unknown algorithm", digest: "md5:" + strings.Repeat("ab", 16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(http.MethodGet, "/v2/r/blobs/"+tc.digest, nil).wantError(t, http.StatusBadRequest, CodeDigestInvalid)
			e.do(http.MethodPost, "/v2/r/blobs/uploads/?digest="+tc.digest, bytes.NewReader([]byte("x")), withAuth()).
				wantError(t, http.StatusBadRequest, CodeDigestInvalid)
			if !tc.isTag {
				e.do(http.MethodGet, "/v2/r/manifests/"+tc.digest, nil).wantError(t, http.StatusBadRequest, CodeDigestInvalid)
			}
		})
	}
}

func TestMaxBlobSize(t *testing.T) {
	e := newTestEnv(t, WithMaxBlobSize(100))
	big := bytes.Repeat([]byte("x"), 101)
	d := digest.FromBytes(big)
	t.Run("monolithic with Content-Length", func(t *testing.T) {
		e.do(http.MethodPost, "/v2/r/blobs/uploads/?digest="+d.String(), bytes.NewReader(big), withAuth()).
			wantError(t, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
	})
	t.Run("monolithic without Content-Length", func(t *testing.T) {
		e.do(http.MethodPost, "/v2/r/blobs/uploads/?digest="+d.String(), bytes.NewReader(big), withAuth(), withUnknownLength()).
			wantError(t, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
	})
	t.Run("chunks that add up to too much", func(t *testing.T) {
		loc := e.startUpload("r")
		r := e.do(http.MethodPatch, loc, bytes.NewReader(big[:60]), withAuth()).wantStatus(t, http.StatusAccepted)
		e.do(http.MethodPatch, r.Header.Get("Location"), bytes.NewReader(big[60:]), withAuth()).
			wantError(t, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
	})
	if e.hasBlob("r", d) {
		t.Fatal("an oversize blob was stored")
	}
	// At the limit is fine.
	e.pushBlob("r", big[:100])
}
