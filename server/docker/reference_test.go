package docker

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
)

// TestResolveImageNamesFirst checks the order of resolveImage: a name
// wins over an id prefix that it also is, and a prefix shorter than
// provider.MinIDPrefix names nothing.
func TestResolveImageNamesFirst(t *testing.T) {
	imgs := sampleImages()
	// An image whose repository is hex, and an image whose id begins with it.
	imgs = append(imgs,
		api.Image{Name: "c3", Repository: "c3", Version: "1.0.0.0", Digest: "sha256:" + hex64('d'), ID: hex64('d'), Refs: []string{"c3:1.0.0.0", "c3:latest"}},
		api.Image{Name: "dead", Repository: "dead", Version: "1.0.0.0", Digest: "sha256:dead" + hex64('f')[4:], ID: "dead" + hex64('f')[4:], Refs: []string{"dead:1.0.0.0", "dead:latest"}},
		api.Image{Name: "other", Repository: "other", Version: "1.0.0.0", Digest: "sha256:deadbeef" + hex64('0')[8:], ID: "deadbeef" + hex64('0')[8:], Refs: []string{"other:1.0.0.0"}},
	)
	if provider.MinIDPrefix != 4 {
		t.Fatalf("provider.MinIDPrefix is %d; the cases below assume 4", provider.MinIDPrefix)
	}
	for _, tc := range []struct {
		name, ref, want string // want is the digest's first hex, or "" for an error
		class           error
	}{
		{name: "a name that is hex", ref: "c3", want: "dddd"},
		{name: "a name that is also a prefix of two ids", ref: "dead", want: "dead"},
		{name: "a name with a tag", ref: "dead:1.0.0.0", want: "dead"},
		{name: "a prefix of one id", ref: "deadb", want: "deadbeef"},
		{name: "a prefix with sha256:", ref: "sha256:deadb", want: "deadbeef"},
		{name: "a prefix of several ids", ref: "sha256:dead", class: errdefs.ErrInvalidArgument},
		{name: "the shortest prefix", ref: "aaaa", want: "aaaa"},
		{name: "a prefix too short", ref: "aaa", class: errdefs.ErrNotFound},
		{name: "two characters", ref: "bb", class: errdefs.ErrNotFound},
		{name: "a full id", ref: hex64('c'), want: "cccc"},
		{name: "a digest", ref: "sha256:" + hex64('b'), want: "bbbb"},
		{name: "an unknown digest", ref: "sha256:" + hex64('9'), class: errdefs.ErrNotFound},
		{name: "a bad reference", ref: "Not/Valid:", class: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := resolveImage(imgs, tc.ref)
			if tc.class != nil {
				if !errors.Is(err, tc.class) {
					t.Fatalf("resolveImage(%q) = %s, %v; want class %v", tc.ref, res.img.ID, err, tc.class)
				}
				return
			}
			if err != nil || res.img.ID[:len(tc.want)] != tc.want {
				t.Fatalf("resolveImage(%q) = %s, %v; want %s…", tc.ref, res.img.ID, err, tc.want)
			}
		})
	}
}

// TestInspectShortPrefix checks `docker inspect c3` as the CLI runs it:
// for a container named c3, container inspect answers; without one, the
// image inspect that follows does not take c3 for the prefix of an id.
func TestInspectShortPrefix(t *testing.T) {
	f := withImages(&fakeBackend{}, sampleImages()) // ids aaaa…, bbbb…, cccc…
	e := newTestEnv(t, f)
	e.do(t, http.MethodGet, "/v1.51/images/cc/json").wantError(t, http.StatusNotFound, "No such image: cc")
	e.do(t, http.MethodGet, "/v1.51/containers/cc/json").wantError(t, http.StatusNotFound, "No such container: cc")
	f.containersFn = func(context.Context) ([]api.Container, error) {
		return []api.Container{{ID: hex64('c'), Name: "cc", ImageDigest: "sha256:" + hex64('a'), State: api.ContainerCreated}}, nil
	}
	var got containerInspect
	e.do(t, http.MethodGet, "/v1.51/containers/cc/json").decode(t, &got)
	if got.Name != "/cc" || got.ID != hex64('c') {
		t.Fatalf("inspect %+v", got)
	}
}
