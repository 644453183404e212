package provider

import (
	"bytes"
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

// withPlatform makes the provider install for host.
func withPlatform(host ocispec.Platform) func(*Provider) {
	return func(p *Provider) { p.platform = host }
}

func TestInstallFromIndex(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withPlatform(ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.14393"}))
	ctx := context.Background()
	windows := ocispec.Platform{OS: "windows", Architecture: "amd64"}
	linux := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	idx := e.cat.putIndex("20.0.0.0", "NanoServerMulti", linux, windows)
	e.cat.putIndex("21.0.0.0", "NanoServerLinux", linux, linux)
	child := e.cat.item("nanoserver:10.0.10586.0").Digest

	started, err := e.p.Install(ctx, api.InstallRequest{Name: "NanoServerMulti"})
	if err != nil {
		t.Fatal(err)
	}
	jb, events := watchAll(t, e.p, started.ID)
	if jb.State != api.JobSucceeded {
		t.Fatalf("install from an index: %s %+v", jb.State, jb.Error)
	}
	said := false
	for _, ev := range events {
		if ev.Type == api.EventLog && strings.Contains(ev.Message, "is an index: installing its manifest "+child.String()+" for windows/amd64") &&
			strings.Contains(ev.Message, "this host: windows/amd64 (10.0.14393)") {
			said = true
		}
	}
	if !said {
		t.Errorf("no event names the chosen manifest and platform: %+v", events)
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
	win := func(c, osVersion string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: d(c), Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: osVersion}}
	}
	host2016 := ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.14393"}
	unknown := ocispec.Platform{OS: "windows", Architecture: "amd64"}
	builds := []ocispec.Descriptor{win("1", "10.0.10586.0"), win("2", "10.0.14393.1000"), win("3", "10.0.14393.693"), win("4", "10.0.17763.0")}
	tests := []struct {
		name string
		host ocispec.Platform
		list []ocispec.Descriptor
		want digest.Digest
		err  string
	}{
		{name: "windows among others", host: unknown, list: []ocispec.Descriptor{
			{Digest: d("1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			{Digest: d("2"), Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64"}},
		}, want: d("2")},
		{name: "the host's build, highest revision", host: host2016, list: builds, want: d("2")},
		{name: "host version unknown: the highest", host: unknown, list: builds, want: d("4")},
		{name: "only newer builds", host: ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.10240"},
			list: builds[1:], err: "no manifest that this host (windows 10.0.10240) can run among 3"},
		{name: "older builds run in isolation", host: ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.15063"},
			list: builds, want: d("2")},
		{name: "only entry, no platform", host: host2016, list: []ocispec.Descriptor{{Digest: d("3")}}, want: d("3")},
		{name: "only entry, another platform", host: host2016, list: []ocispec.Descriptor{
			{Digest: d("1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		}, err: "no windows/amd64 manifest among 1 (linux/amd64)"},
		{name: "another architecture", host: ocispec.Platform{OS: "windows", Architecture: "arm64"}, list: builds,
			err: "no windows/arm64 manifest among 4"},
		{name: "none fits", host: host2016, list: []ocispec.Descriptor{
			{Digest: d("1"), Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			{Digest: d("2")},
		}, err: "no windows/amd64 manifest among 2 (linux/amd64, unknown platform)"},
		{name: "empty", host: host2016, err: "no windows/amd64 manifest among 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := choosePlatform(tt.list, tt.host)
			if tt.want == "" {
				mustClass(t, err, errdefs.ErrFailedPrecondition)
				if !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q, want it to say %q", err, tt.err)
				}
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

// TestInstallRefusesArtifacts: a manifest whose config is not an image
// config (an oras artifact), reached through an index, is refused with a
// clear error, and nothing is installed.
func TestInstallRefusesArtifacts(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withPlatform(ocispec.Platform{OS: "windows", Architecture: "amd64"}))
	ctx := context.Background()
	blob := func(b []byte) digest.Digest {
		info, err := e.cat.reg.PutBlob(ctx, "nanoserver", "", int64(len(b)), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return info.Digest
	}
	notes := []byte("release notes")
	art := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.notes",
		Config:       ocispec.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: blob([]byte("{}")), Size: 2},
		Layers:       []ocispec.Descriptor{{MediaType: "text/plain", Digest: blob(notes), Size: int64(len(notes))}},
	}
	b, _ := json.Marshal(art)
	rec, err := e.cat.reg.PutManifest(ctx, "nanoserver", "notes", ocispec.MediaTypeImageManifest, b)
	if err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Annotations: map[string]string{find.AnnotationTitle: "Notes", find.AnnotationVersion: "1.0"},
		Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: rec.Digest, Size: rec.Size,
			Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64"}}},
	}
	b, _ = json.Marshal(idx)
	if _, err := e.cat.reg.PutManifest(ctx, "nanoserver", "notes-index", ocispec.MediaTypeImageIndex, b); err != nil {
		t.Fatal(err)
	}
	jb := e.install(api.InstallRequest{Name: "Notes"})
	if jb.State != api.JobFailed || jb.Error == nil ||
		!strings.Contains(jb.Error.Message, `is an artifact (artifact type "application/vnd.example.notes", config media type "application/vnd.oci.empty.v1+json"), not a container image`) {
		t.Fatalf("install of an artifact: %s %+v", jb.State, jb.Error)
	}
	imgs, err := e.p.Images(ctx, GetOptions{})
	if err != nil || len(imgs) != 0 {
		t.Fatalf("images after a refused artifact: %+v, %v", imgs, err)
	}
}
