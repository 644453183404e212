package provider

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// putIndex publishes, in repo nanoserver under tag, an index of the
// NanoServer 10.0.10586.0 manifest with the given platforms, and returns
// its digest.
func (c *catalogEnv) putIndex(tag, title string, platforms ...ocispec.Platform) digest.Digest {
	c.t.Helper()
	ctx := context.Background()
	rec, err := c.reg.ResolveManifest(ctx, "nanoserver", "10.0.10586.0")
	if err != nil {
		c.t.Fatal(err)
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Annotations: map[string]string{
			find.AnnotationTitle:   title,
			find.AnnotationVersion: tag,
			find.AnnotationVendor:  "CN=Microsoft",
		},
	}
	for _, pl := range platforms {
		pl := pl
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest, Digest: rec.Digest, Size: rec.Size, Platform: &pl,
		})
	}
	b, err := json.Marshal(idx)
	if err != nil {
		c.t.Fatal(err)
	}
	out, err := c.reg.PutManifest(ctx, "nanoserver", tag, ocispec.MediaTypeImageIndex, b)
	if err != nil {
		c.t.Fatal(err)
	}
	return out.Digest
}

func TestInstallFromIndex(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	windows := ocispec.Platform{OS: "windows", Architecture: "amd64"}
	linux := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	idx := e.cat.putIndex("20.0.0.0", "NanoServerMulti", linux, windows)
	e.cat.putIndex("21.0.0.0", "NanoServerLinux", linux, linux)
	child := e.cat.item("nanoserver:10.0.10586.0").Digest

	jb := e.install(api.InstallRequest{Name: "NanoServerMulti"})
	if jb.State != api.JobSucceeded {
		t.Fatalf("install from an index: %s %+v", jb.State, jb.Error)
	}
	if jb.Result.Digest != idx.String() {
		t.Errorf("image digest %s, want the index's %s", jb.Result.Digest, idx)
	}
	rec, ok := e.record(idx)
	if !ok || rec.Index == nil || rec.Index.Digest != idx || rec.Manifest.Digest != child {
		t.Fatalf("record %+v", rec)
	}
	for _, d := range rec.blobs() {
		if ok, err := e.p.verifyBlob(ctx, d); err != nil || !ok {
			t.Errorf("blob %s: %v %v", d.Digest, ok, err)
		}
	}

	jb = e.install(api.InstallRequest{Name: "NanoServerLinux"})
	if jb.State != api.JobFailed || jb.Error == nil || !strings.Contains(jb.Error.Message, "no windows/amd64 manifest among 2 (linux/arm64, linux/arm64)") {
		t.Errorf("index without windows/amd64: %s %+v", jb.State, jb.Error)
	}
}

func TestChoosePlatform(t *testing.T) {
	d := func(c string) digest.Digest { return digest.Digest("sha256:" + strings.Repeat(c, 64)) }
	tests := []struct {
		name string
		list []ocispec.Descriptor
		want digest.Digest
	}{
		{name: "windows among others", list: []ocispec.Descriptor{
			{Digest: d("1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			{Digest: d("2"), Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64"}},
		}, want: d("2")},
		{name: "only entry", list: []ocispec.Descriptor{{Digest: d("3")}}, want: d("3")},
		{name: "none fits", list: []ocispec.Descriptor{
			{Digest: d("1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			{Digest: d("2")},
		}},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choosePlatform(tt.list)
			if tt.want == "" {
				mustClass(t, err, errdefs.ErrFailedPrecondition)
				return
			}
			if err != nil || got.Digest != tt.want {
				t.Errorf("got %s, %v; want %s", got.Digest, err, tt.want)
			}
		})
	}
}

func TestPickOne(t *testing.T) {
	entry := func(name, version, source, dgst string) api.FindEntry {
		return api.FindEntry{Name: name, Repository: strings.ToLower(name), Version: version, Source: source, Digest: dgst}
	}
	tests := []struct {
		name  string
		found []api.FindEntry
		want  string // "version@source", or "" for an error
		class error
	}{
		{name: "none", found: nil, class: errdefs.ErrNotFound},
		{name: "one", found: []api.FindEntry{entry("A", "1.0", "s", "d1")}, want: "1.0@s"},
		{name: "versions of one image", found: []api.FindEntry{entry("A", "1.0", "s", "d1"), entry("A", "2.0", "s", "d2")}, want: "2.0@s"},
		{name: "same image in two sources", found: []api.FindEntry{entry("A", "1.0", "s1", "d1"), entry("A", "1.0", "s2", "d1")}, want: "1.0@s1"},
		{name: "different images in two sources", found: []api.FindEntry{entry("A", "1.0", "s1", "d1"), entry("A", "1.0", "s2", "d2")},
			class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickOne(tt.found, api.InstallRequest{Name: "A"})
			if tt.want == "" {
				mustClass(t, err, tt.class)
				return
			}
			if err != nil || got.Version+"@"+got.Source != tt.want {
				t.Errorf("got %s@%s, %v; want %s", got.Version, got.Source, err, tt.want)
			}
		})
	}
}
