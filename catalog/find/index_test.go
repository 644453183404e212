package find

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
)

// tagged is the Tagged of repo:tag for m.
func tagged(repo, tag string, m Manifest) Tagged {
	m.Repository = repo
	return Tagged{Tag: tag, Manifest: m}
}

var pushed = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func record(seed string, ann map[string]string) Manifest {
	return Manifest{
		Digest:      digest.FromString(seed).String(),
		Annotations: ann,
		Size:        1000 + int64(len(seed)),
		OSVersion:   "10.0.14393.0",
		Pushed:      pushed,
	}
}

func TestIndex(t *testing.T) {
	nano := record("nano-14393", map[string]string{
		AnnotationTitle:       "NanoServer",
		AnnotationVersion:     "10.0.14393.0",
		AnnotationVendor:      "CN=Microsoft",
		AnnotationDescription: "Container OS Image of Windows Server 2016 : Nano Server",
		AnnotationCreated:     "2016-10-12T00:00:00Z",
	})
	nanoOld := record("nano-10586", map[string]string{
		AnnotationTitle:   "NanoServer",
		AnnotationVersion: "10.0.10586.0",
	})
	iis := record("iis", map[string]string{
		AnnotationTitle:      "NanoServerIIS",
		AnnotationVersion:    "1.0.0.0",
		AnnotationVendor:     "CN=Demo",
		AnnotationBaseName:   "nanoserver:10.0.14393.0",
		AnnotationBaseDigest: nano.Digest,
	})
	byName := record("byname", map[string]string{
		AnnotationBaseName: "nanoserver:10.0.10586.0",
	})
	unknownParent := record("orphan", map[string]string{
		AnnotationBaseName:   "elsewhere.example:5000/base:2.0",
		AnnotationBaseDigest: digest.FromString("missing").String(),
	})
	crane := record("crane", nil)
	crane.OSVersion = ""
	oras := record("oras", nil)
	bad := record("badcreated", map[string]string{AnnotationCreated: "yesterday"})

	src := []Tagged{
		tagged("nanoserver", "10.0.14393.0", nano),
		tagged("nanoserver", "latest", nano),
		tagged("nanoserver", "10.0.10586.0", nanoOld),
		tagged("nanoserveriis", "1.0.0.0", iis),
		tagged("child", "1.0", byName),
		tagged("orphan", "2.0", unknownParent),
		tagged("tools/crane", "latest", crane),
		tagged("tools/crane", "v1", crane),
		tagged("tools/crane", "0.9", crane),
		tagged("tools/oras", "latest", oras),
		tagged("tools/oras", "stable", oras),
		tagged("bad", "latest", bad),
	}
	got := Index(Group(src))
	want := []api.FindEntry{
		{Name: "bad", Repository: "bad", Version: "latest", IsOSImage: true, Digest: bad.Digest,
			Size: bad.Size, Created: pushed, OSVersion: "10.0.14393.0"},
		{Name: "child", Repository: "child", Version: "1.0", IsOSImage: false,
			Parent: &api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0"},
			Digest: byName.Digest, Size: byName.Size, Created: pushed, OSVersion: "10.0.14393.0"},
		{Name: "NanoServer", Repository: "nanoserver", Version: "10.0.10586.0", IsOSImage: true,
			Digest: nanoOld.Digest, Size: nanoOld.Size, Created: pushed, OSVersion: "10.0.14393.0"},
		{Name: "NanoServer", Repository: "nanoserver", Version: "10.0.14393.0", IsOSImage: true,
			Description: "Container OS Image of Windows Server 2016 : Nano Server", Publisher: "CN=Microsoft",
			Digest: nano.Digest, Size: nano.Size,
			Created: time.Date(2016, 10, 12, 0, 0, 0, 0, time.UTC), OSVersion: "10.0.14393.0"},
		{Name: "NanoServerIIS", Repository: "nanoserveriis", Version: "1.0.0.0", Publisher: "CN=Demo",
			Parent: &api.ParentRef{Name: "NanoServer", Version: "10.0.14393.0", Digest: nano.Digest, Publisher: "CN=Microsoft"},
			Digest: iis.Digest, Size: iis.Size, Created: pushed, OSVersion: "10.0.14393.0"},
		{Name: "orphan", Repository: "orphan", Version: "2.0",
			Parent: &api.ParentRef{Name: "elsewhere.example:5000/base", Version: "2.0", Digest: digest.FromString("missing").String()},
			Digest: unknownParent.Digest, Size: unknownParent.Size, Created: pushed, OSVersion: "10.0.14393.0"},
		{Name: "tools/crane", Repository: "tools/crane", Version: "v1", IsOSImage: true,
			Digest: crane.Digest, Size: crane.Size, Created: pushed},
		{Name: "tools/oras", Repository: "tools/oras", Version: "stable", IsOSImage: true,
			Digest: oras.Digest, Size: oras.Size, Created: pushed, OSVersion: "10.0.14393.0"},
	}
	if len(got) != len(want) {
		t.Fatalf("Index() gave %d entries, want %d:\n%s", len(got), len(want), ids(got))
	}
	for i := range want {
		if !equalEntry(got[i], want[i]) {
			t.Errorf("entry %d:\n got %+v parent %+v\nwant %+v parent %+v", i, got[i], got[i].Parent, want[i], want[i].Parent)
		}
	}

	// The index feeds Filter: the latest NanoServer, its child by wildcard.
	latest, err := Filter(got, Options{Name: "nano*"})
	if err != nil {
		t.Fatal(err)
	}
	if ids(latest) != "NanoServer@10.0.14393.0 NanoServerIIS@1.0.0.0" {
		t.Errorf("Filter(Index) = %s", ids(latest))
	}
}

func TestIndexVersionFromTags(t *testing.T) {
	tests := []struct {
		name string
		tags []string
		want string
	}{
		{name: "only latest", tags: []string{"latest"}, want: "latest"},
		{name: "version beats latest", tags: []string{"latest", "1.0"}, want: "1.0"},
		{name: "highest version", tags: []string{"1.0.0.9", "1.0.0.10", "latest"}, want: "1.0.0.10"},
		{name: "version beats a word", tags: []string{"stable", "2.0"}, want: "2.0"},
		{name: "first word", tags: []string{"stable", "edge", "latest"}, want: "edge"},
		{name: "equal versions pick the smaller text", tags: []string{"1.0.0.0", "1.0"}, want: "1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := record("x", nil)
			var ts []Tagged
			for _, tag := range tt.tags {
				ts = append(ts, tagged("x", tag, rec))
			}
			got := Index(Group(ts))
			if len(got) != 1 || got[0].Version != tt.want {
				t.Errorf("Index() = %s, want one entry x@%s", ids(got), tt.want)
			}
		})
	}
}

func TestSplitReference(t *testing.T) {
	tests := []struct{ in, repo, tag, dgst string }{
		{"nanoserver:10.0.14393.0", "nanoserver", "10.0.14393.0", ""},
		{"nanoserver", "nanoserver", "", ""},
		{"host:5000/repo", "host:5000/repo", "", ""},
		{"host:5000/repo:1.0", "host:5000/repo", "1.0", ""},
		{"repo@sha256:abc", "repo", "", "sha256:abc"},
		{"repo:1.0@sha256:abc", "repo", "1.0", "sha256:abc"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			repo, tag, dgst := SplitReference(tt.in)
			if repo != tt.repo || tag != tt.tag || dgst != tt.dgst {
				t.Errorf("SplitReference(%q) = %q, %q, %q; want %q, %q, %q", tt.in, repo, tag, dgst, tt.repo, tt.tag, tt.dgst)
			}
		})
	}
}

func equalEntry(a, b api.FindEntry) bool {
	pa, pb := a.Parent, b.Parent
	a.Parent, b.Parent = nil, nil
	if !a.Created.Equal(b.Created) {
		return false
	}
	a.Created, b.Created = time.Time{}, time.Time{}
	if a != b {
		return false
	}
	if (pa == nil) != (pb == nil) {
		return false
	}
	return pa == nil || *pa == *pb
}
