package source

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
)

// manifestAccept is the Accept header of manifest requests: the manifest
// kinds a catalog image or a registry's image can have.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
	model.MediaTypeDockerManifest,
	model.MediaTypeDockerManifestList,
}, ", ")

// Manifest fetches the manifest reference (a tag or a digest) of repo, at
// most MaxManifestSize bytes (TooLarge beyond), and verifies its bytes:
// against reference when it is a digest (sha256 or sha512), else against
// the Docker-Content-Digest header when the registry sends one (with its
// algorithm); else the sha256 of the bytes is the digest. A mismatch is a
// FailedPrecondition error that names both digests.
//
// The descriptor has the media type of the Content-Type header, or of the
// body's mediaType field when the header is missing or generic, the digest
// and the size of the bytes.
func (c *Client) Manifest(ctx context.Context, repo, reference string) (ocispec.Descriptor, []byte, error) {
	fail := func(err error) (ocispec.Descriptor, []byte, error) {
		return ocispec.Descriptor{}, nil, fmt.Errorf("source %s: repository %s: manifest %s: %w", c.name, repo, reference, err)
	}
	if err := model.ValidateName(repo); err != nil {
		return fail(err)
	}
	_, refDigest, err := model.ParseReference(reference)
	if err != nil {
		return fail(err)
	}
	u := c.endpoint("/v2/"+repo+"/manifests/"+reference, nil)
	resp, err := c.get(ctx, u, pullScope(repo), http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(statusError(resp))
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return fail(fmt.Errorf("%d bytes: %w", resp.ContentLength, errTooLarge(MaxManifestSize)))
	}
	body, err := readLimited(resp.Body, MaxManifestSize)
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return fail(err)
		}
		return fail(transportError(ctx, err))
	}

	expected, from := refDigest, "the reference"
	if expected == "" {
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			d, err := model.ParseDigest(strings.TrimSpace(h))
			if err != nil {
				return fail(fmt.Errorf("the registry's Docker-Content-Digest %q: %v: %w", h, err, errdefs.ErrFailedPrecondition))
			}
			expected, from = d, "Docker-Content-Digest"
		}
	}
	if expected == "" {
		expected = digest.SHA256.FromBytes(body)
	} else if got := expected.Algorithm().FromBytes(body); got != expected {
		return fail(fmt.Errorf("the bytes have digest %s, %s says %s: %w", got, from, expected, errdefs.ErrFailedPrecondition))
	}
	return ocispec.Descriptor{
		MediaType: manifestMediaType(resp.Header.Get("Content-Type"), body),
		Digest:    expected,
		Size:      int64(len(body)),
	}, body, nil
}

// manifestMediaType is the media type of Content-Type without its
// parameters, unless that is missing or generic: then the body's mediaType
// field, or for an OCI body without one, what its fields say.
func manifestMediaType(contentType string, body []byte) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch mt {
	case "", "application/json", "application/octet-stream", "text/plain", "binary/octet-stream":
	default:
		return mt
	}
	var f struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(body, &f) != nil {
		return mt
	}
	switch {
	case f.MediaType != "":
		return f.MediaType
	case f.Config != nil && f.Manifests == nil:
		return ocispec.MediaTypeImageManifest
	case f.Manifests != nil && f.Config == nil:
		return ocispec.MediaTypeImageIndex
	}
	return mt
}
