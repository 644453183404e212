package catalog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// TestManifestRoundTrip pushes an image by tag, reads it by tag and digest
// with GET and HEAD, deletes it and checks it is gone.
func TestManifestRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	img := newImage(t, "layer of nanoserver", nil, map[string]string{find.AnnotationTitle: "NanoServer"})
	e.push("nanoserver", "10.0.14393.0", img).
		wantHeader(t, "Location", "/v2/nanoserver/manifests/"+img.digest.String()).
		wantHeader(t, "Docker-Content-Digest", img.digest.String()).
		wantHeader(t, "OCI-Subject", "")

	for _, ref := range []string{"10.0.14393.0", img.digest.String()} {
		r := e.do(http.MethodGet, "/v2/nanoserver/manifests/"+ref, nil,
			withHeader("Accept", ocispec.MediaTypeImageManifest)).
			wantStatus(t, http.StatusOK).
			wantHeader(t, "Content-Type", ocispec.MediaTypeImageManifest).
			wantHeader(t, "Docker-Content-Digest", img.digest.String()).
			wantHeader(t, "Content-Length", strconv.Itoa(len(img.manifest)))
		if !bytes.Equal(r.body, img.manifest) {
			t.Fatalf("GET %s: manifest bytes differ", ref)
		}
		h := e.do(http.MethodHead, "/v2/nanoserver/manifests/"+ref, nil).
			wantStatus(t, http.StatusOK).
			wantHeader(t, "Content-Type", ocispec.MediaTypeImageManifest).
			wantHeader(t, "Docker-Content-Digest", img.digest.String()).
			wantHeader(t, "Content-Length", strconv.Itoa(len(img.manifest)))
		if len(h.body) != 0 {
			t.Fatal("HEAD with a body")
		}
	}

	// Deleting the tag leaves the manifest by digest.
	e.do(http.MethodDelete, "/v2/nanoserver/manifests/10.0.14393.0", nil, withAuth()).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodGet, "/v2/nanoserver/manifests/10.0.14393.0", nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
	e.do(http.MethodHead, "/v2/nanoserver/manifests/10.0.14393.0", nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
	e.do(http.MethodGet, "/v2/nanoserver/manifests/"+img.digest.String(), nil).wantStatus(t, http.StatusOK)
	// Deleting the digest removes it.
	e.do(http.MethodDelete, "/v2/nanoserver/manifests/"+img.digest.String(), nil, withAuth()).wantStatus(t, http.StatusAccepted)
	e.do(http.MethodGet, "/v2/nanoserver/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
}

// TestManifestBlobUnknown pushes a manifest whose distributable layer is
// missing: 400 MANIFEST_BLOB_UNKNOWN, and no tag.
func TestManifestBlobUnknown(t *testing.T) {
	e := newTestEnv(t)
	img := newImage(t, "a layer nobody pushed", nil, nil)
	e.pushBlob("repo", img.config)
	e.do(http.MethodPut, "/v2/repo/manifests/1.0.0.0", bytes.NewReader(img.manifest), withAuth(),
		withHeader("Content-Type", ocispec.MediaTypeImageManifest)).
		wantError(t, http.StatusBadRequest, CodeManifestBlobUnknown)
	e.do(http.MethodGet, "/v2/repo/manifests/1.0.0.0", nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
	e.do(http.MethodGet, "/v2/repo/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
}

// TestManifestTooLarge sends a manifest one byte over the limit, with and
// without a Content-Length: 413 in the envelope, and nothing changes.
func TestManifestTooLarge(t *testing.T) {
	e := newTestEnv(t)
	limit := catalog.DefaultMaxManifestSize
	// A valid manifest padded with an annotation to limit+1 bytes.
	base := newImage(t, "layer", nil, map[string]string{"pad": ""})
	pad := strings.Repeat("p", limit+1-len(base.manifest))
	img := newImage(t, "layer", nil, map[string]string{"pad": pad})
	if len(img.manifest) != limit+1 {
		t.Fatalf("test manifest of %d bytes, want %d", len(img.manifest), limit+1)
	}
	e.pushBlob("repo", img.config)
	e.pushBlob("repo", img.layers[0])

	for _, tc := range []struct {
		name string
		opts []reqOpt
	}{
		{"with Content-Length", nil},
		{"without Content-Length", []reqOpt{withUnknownLength()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]reqOpt{withAuth(), withHeader("Content-Type", ocispec.MediaTypeImageManifest)}, tc.opts...)
			e.do(http.MethodPut, "/v2/repo/manifests/big", bytes.NewReader(img.manifest), opts...).
				wantError(t, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
		})
	}
	e.do(http.MethodGet, "/v2/repo/manifests/big", nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
	e.do(http.MethodGet, "/v2/repo/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)

	// Exactly at the limit is accepted.
	pad = strings.Repeat("p", limit-len(base.manifest))
	fits := newImage(t, "layer", nil, map[string]string{"pad": pad})
	e.do(http.MethodPut, "/v2/repo/manifests/fits", bytes.NewReader(fits.manifest), withAuth(),
		withHeader("Content-Type", ocispec.MediaTypeImageManifest)).wantStatus(t, http.StatusCreated)
}

func TestManifestSmallerLimit(t *testing.T) {
	e := newTestEnv(t, WithMaxManifestSize(256))
	img := newImage(t, "layer", nil, map[string]string{"a": strings.Repeat("x", 300)})
	e.do(http.MethodPut, "/v2/repo/manifests/t", bytes.NewReader(img.manifest), withAuth(),
		withHeader("Content-Type", ocispec.MediaTypeImageManifest)).
		wantError(t, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
}

// TestNameAndReferenceValidation checks that invalid names, tags and
// digests get their code before any store call.
func TestNameAndReferenceValidation(t *testing.T) {
	e := newTestEnv(t)
	img := newImage(t, "layer", nil, nil)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		status             int
		code               string
	}{
		{"upper case name", "GET", "/v2/NanoServer/manifests/latest", nil, 400, CodeNameInvalid},
		{"name with a double dot", "GET", "/v2/a..b/tags/list", nil, 400, CodeNameInvalid},
		{"name with a trailing slash part", "GET", "/v2/a/-b/blobs/" + digest.FromString("x").String(), nil, 400, CodeNameInvalid},
		{"name too long", "GET", "/v2/" + strings.Repeat("a", 256) + "/manifests/latest", nil, 400, CodeNameInvalid},
		{"push to an invalid name", "PUT", "/v2/Bad_Name/manifests/1.0", img.manifest, 400, CodeNameInvalid},
		{"upload to an invalid name", "POST", "/v2/Bad_Name/blobs/uploads/", nil, 400, CodeNameInvalid},
		{"referrers of an invalid name", "GET", "/v2/BAD/referrers/" + digest.FromString("x").String(), nil, 400, CodeNameInvalid},
		{"tag too long", "GET", "/v2/repo/manifests/" + strings.Repeat("t", 129), nil, 400, CodeTagInvalid},
		{"tag starting with a dot", "PUT", "/v2/repo/manifests/.hidden", img.manifest, 400, CodeTagInvalid},
		{"bad digest reference", "PUT", "/v2/repo/manifests/sha256:baddigeststring", img.manifest, 400, CodeDigestInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.method, tc.path, bytes.NewReader(tc.body), withAuth(),
				withHeader("Content-Type", ocispec.MediaTypeImageManifest)).wantError(t, tc.status, tc.code)
		})
	}
	// Nothing was created.
	var cat repositoryList
	if err := json.Unmarshal(e.do(http.MethodGet, "/v2/_catalog", nil).wantStatus(t, http.StatusOK).body, &cat); err != nil {
		t.Fatal(err)
	}
	if len(cat.Repositories) != 0 {
		t.Fatalf("repositories after invalid requests: %v", cat.Repositories)
	}
}

func TestManifestDigestMismatch(t *testing.T) {
	e := newTestEnv(t)
	img := newImage(t, "layer", nil, nil)
	e.pushBlob("repo", img.config)
	e.pushBlob("repo", img.layers[0])
	wrong := digest.FromString("not this manifest")
	e.do(http.MethodPut, "/v2/repo/manifests/"+wrong.String(), bytes.NewReader(img.manifest), withAuth(),
		withHeader("Content-Type", ocispec.MediaTypeImageManifest)).
		wantError(t, http.StatusBadRequest, CodeDigestInvalid)
	e.do(http.MethodGet, "/v2/repo/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
}

func TestManifestInvalid(t *testing.T) {
	e := newTestEnv(t)
	e.do(http.MethodPut, "/v2/repo/manifests/1", strings.NewReader("{not json"), withAuth(),
		withHeader("Content-Type", ocispec.MediaTypeImageManifest)).
		wantError(t, http.StatusBadRequest, CodeManifestInvalid)
}
