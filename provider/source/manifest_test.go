package source

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestManifest(t *testing.T) {
	env := newCatalogEnv(t)
	c := newTestClient(t, serve(t, env.handler).URL)
	nano := env.item(t, "nanoserver", "10.0.10586.0")
	ctx := context.Background()

	for _, tc := range []struct {
		name, repo, reference string
	}{
		{name: "by tag", repo: "nanoserver", reference: "10.0.10586.0"},
		{name: "by digest", repo: "nanoserver", reference: nano.Digest.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc, body, err := c.Manifest(ctx, tc.repo, tc.reference)
			if err != nil {
				t.Fatal(err)
			}
			want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: nano.Digest, Size: int64(len(body))}
			if desc.MediaType != want.MediaType || desc.Digest != want.Digest || desc.Size != want.Size {
				t.Errorf("descriptor %+v, want %+v", desc, want)
			}
			if digest.FromBytes(body) != nano.Digest {
				t.Errorf("the bytes have digest %s, want %s", digest.FromBytes(body), nano.Digest)
			}
		})
	}

	t.Run("sha512", func(t *testing.T) {
		_, body, err := c.Manifest(ctx, "nanoserver", nano.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		d512 := digest.SHA512.FromBytes(body)
		if _, err := env.reg.PutManifest(ctx, "nanoserver", d512.String(), ocispec.MediaTypeImageManifest, body); err != nil {
			t.Fatal(err)
		}
		desc, got, err := c.Manifest(ctx, "nanoserver", d512.String())
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != d512 || !bytes.Equal(got, body) {
			t.Errorf("digest %s, want %s", desc.Digest, d512)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		_, _, err := c.Manifest(ctx, "nanoserver", "9.9.9.9")
		if !errdefs.IsNotFound(err) {
			t.Fatalf("error %v, want NotFound", err)
		}
		for _, w := range []string{"source catalog", "repository nanoserver", "manifest 9.9.9.9", "MANIFEST_UNKNOWN"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	})

	for _, tc := range []struct {
		name, repo, reference string
	}{
		{name: "bad repository", repo: "NanoServer", reference: "latest"},
		{name: "bad tag", repo: "nanoserver", reference: "-x"},
		{name: "bad digest", repo: "nanoserver", reference: "sha256:1234"},
		{name: "unsupported algorithm", repo: "nanoserver", reference: "md5:" + strings.Repeat("0", 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := c.Manifest(ctx, tc.repo, tc.reference); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want InvalidArgument", err)
			}
		})
	}
}

func TestManifestVerification(t *testing.T) {
	env := newCatalogEnv(t)
	nano := env.item(t, "nanoserver", "10.0.10586.0")
	flip := func(h http.Header, body []byte) []byte {
		body[len(body)/2] ^= 0x01
		return body
	}
	noDigestHeader := func(h http.Header, body []byte) []byte {
		h.Del("Docker-Content-Digest")
		return body
	}
	badDigestHeader := func(h http.Header, body []byte) []byte {
		h.Set("Docker-Content-Digest", "sha256:nothex")
		return body
	}
	for _, tc := range []struct {
		name      string
		edit      func(h http.Header, body []byte) []byte
		reference string
		// class is nil for success.
		class error
	}{
		{name: "tampered, by tag", edit: flip, reference: "10.0.10586.0", class: errdefs.ErrFailedPrecondition},
		{name: "tampered, by digest", edit: flip, reference: nano.Digest.String(), class: errdefs.ErrFailedPrecondition},
		{name: "tampered, by tag, no Docker-Content-Digest", reference: "10.0.10586.0",
			edit: func(h http.Header, body []byte) []byte { return flip(h, noDigestHeader(h, body)) }},
		{name: "no Docker-Content-Digest", edit: noDigestHeader, reference: "10.0.10586.0"},
		{name: "bad Docker-Content-Digest", edit: badDigestHeader, reference: "10.0.10586.0", class: errdefs.ErrFailedPrecondition},
		{name: "bad Docker-Content-Digest, by digest", edit: badDigestHeader, reference: nano.Digest.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, serve(t, rewrite(env.handler, isManifestRequest, tc.edit)).URL)
			desc, body, err := c.Manifest(context.Background(), "nanoserver", tc.reference)
			if tc.class == nil {
				if err != nil {
					t.Fatal(err)
				}
				if desc.Digest != digest.FromBytes(body) {
					t.Errorf("descriptor digest %s, the bytes have %s", desc.Digest, digest.FromBytes(body))
				}
				return
			}
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			if tc.name == "bad Docker-Content-Digest" {
				return
			}
			for _, w := range []string{"repository nanoserver", "manifest " + tc.reference, nano.Digest.String(), "the bytes have digest sha256:"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestManifestMediaType(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name, contentType, want string
	}{
		{name: "parameters", contentType: ocispec.MediaTypeImageManifest + "; charset=utf-8", want: ocispec.MediaTypeImageManifest},
		{name: "generic", contentType: "application/octet-stream", want: ocispec.MediaTypeImageManifest},
		{name: "missing", contentType: "", want: ocispec.MediaTypeImageManifest},
		{name: "docker", contentType: "application/vnd.docker.distribution.manifest.v2+json",
			want: "application/vnd.docker.distribution.manifest.v2+json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := rewrite(env.handler, isManifestRequest, func(h http.Header, body []byte) []byte {
				h.Set("Content-Type", tc.contentType)
				if tc.contentType == "" {
					h["Content-Type"] = nil
				}
				return body
			})
			desc, _, err := newTestClient(t, serve(t, h).URL).Manifest(context.Background(), "nanoserver", "latest")
			if err != nil {
				t.Fatal(err)
			}
			if desc.MediaType != tc.want {
				t.Errorf("media type %q, want %q", desc.MediaType, tc.want)
			}
		})
	}
}

func TestManifestTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte{' '}, MaxManifestSize+1)
	for _, tc := range []struct {
		name          string
		contentLength bool
	}{
		{name: "with Content-Length", contentLength: true},
		{name: "chunked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
				if tc.contentLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				}
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(big[:1024])
				w.(http.Flusher).Flush()
				_, _ = w.Write(big[1024:])
			})
			_, _, err := newTestClient(t, serve(t, h).URL).Manifest(context.Background(), "nanoserver", "latest")
			if !errdefs.IsTooLarge(err) || !strings.Contains(err.Error(), "manifest latest") {
				t.Fatalf("error %v, want TooLarge naming the manifest", err)
			}
		})
	}
}
