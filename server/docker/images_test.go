package docker

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
)

func TestListImages(t *testing.T) {
	e := newTestEnv(t, withImages(&fakeBackend{}, append(sampleImages(), api.Image{
		Name: "Dangling", Repository: "dangling", Version: "1.0.0.0", Digest: "sha256:" + hex64('d'), ID: hex64('d'),
	})))
	for _, tc := range []struct {
		name    string
		filters string
		want    map[string][]string // id -> RepoTags
	}{
		{"all", "", map[string][]string{
			"sha256:" + hex64('a'): {"nanoserver:10.0.10586.0", "nanoserver:latest"},
			"sha256:" + hex64('b'): {"windowsservercore:10.0.14393.0", "windowsservercore:latest"},
			"sha256:" + hex64('c'): {"microsoft/iis:1.0.0.0", "microsoft/iis:latest"},
			"sha256:" + hex64('d'): {},
		}},
		{"dangling", `{"dangling":{"true":true}}`, map[string][]string{"sha256:" + hex64('d'): {}}},
		{"not dangling, old list form", `{"dangling":["false"]}`, map[string][]string{
			"sha256:" + hex64('a'): {"nanoserver:10.0.10586.0", "nanoserver:latest"},
			"sha256:" + hex64('b'): {"windowsservercore:10.0.14393.0", "windowsservercore:latest"},
			"sha256:" + hex64('c'): {"microsoft/iis:1.0.0.0", "microsoft/iis:latest"},
		}},
		{"reference by repository", `{"reference":{"microsoft/*":true}}`, map[string][]string{
			"sha256:" + hex64('c'): {"microsoft/iis:1.0.0.0", "microsoft/iis:latest"},
		}},
		{"reference with a tag keeps the matching tags", `{"reference":{"nanoserver:10.*":true}}`, map[string][]string{
			"sha256:" + hex64('a'): {"nanoserver:10.0.10586.0"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1.50/images/json"
			if tc.filters != "" {
				path += "?filters=" + url.QueryEscape(tc.filters)
			}
			var got []imageSummary
			e.do(t, http.MethodGet, path).decode(t, &got)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %v", got, tc.want)
			}
			for _, s := range got {
				want, ok := tc.want[s.ID]
				if !ok || !slices.Equal(s.RepoTags, want) {
					t.Errorf("%s: RepoTags %v, want %v", s.ID, s.RepoTags, want)
				}
			}
		})
	}
	var all []imageSummary
	e.do(t, http.MethodGet, "/images/json").decode(t, &all)
	iis := all[0]
	if iis.ID != "sha256:"+hex64('c') || iis.ParentID != "sha256:"+hex64('b') || iis.Size != 1200 || iis.Created != created2.Unix()+3600 {
		t.Fatalf("newest first, with its fields: %+v", iis)
	}
	e.do(t, http.MethodGet, "/images/json?filters="+url.QueryEscape(`{"color":{"red":true}}`)).wantError(t, http.StatusBadRequest, "invalid filter 'color'")
	e.do(t, http.MethodGet, "/images/json?filters="+url.QueryEscape(`{"since":{"x":true}}`)).wantError(t, http.StatusNotImplemented, "filter 'since' is not supported")
	e.do(t, http.MethodGet, "/images/json?filters="+url.QueryEscape(`{"dangling":{"maybe":true}}`)).wantError(t, http.StatusBadRequest, "invalid filter 'dangling=maybe'")
	e.do(t, http.MethodGet, "/images/json?filters=notjson").wantError(t, http.StatusBadRequest, "invalid filter")
}

func TestInspectImage(t *testing.T) {
	e := newTestEnv(t, withImages(&fakeBackend{}, sampleImages()))
	for _, tc := range []struct{ name, ref, id string }{
		{"familiar name", "nanoserver", hex64('a')},
		{"normalised name and tag", "docker.io/library/nanoserver:10.0.10586.0", hex64('a')},
		{"repository with a slash", "microsoft/iis", hex64('c')},
		{"short id", "cccccccccccc", hex64('c')},
		{"full id", "sha256:" + hex64('b'), hex64('b')},
		{"repo@digest", "windowsservercore@sha256:" + hex64('b'), hex64('b')},
		{"version with fewer parts", "microsoft/iis:1.0", hex64('c')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got imageInspect
			e.do(t, http.MethodGet, "/v1.50/images/"+tc.ref+"/json").decode(t, &got)
			if got.ID != "sha256:"+tc.id || got.Os != "windows" || got.OsVersion == "" {
				t.Fatalf("inspect %+v", got)
			}
		})
	}
	e.do(t, http.MethodGet, "/images/nanoserver:9.9/json").wantError(t, http.StatusNotFound, "No such image: nanoserver:9.9")
	e.do(t, http.MethodGet, "/images/NanoServer/json").wantError(t, http.StatusBadRequest, "invalid reference format")
}

func TestImageHistory(t *testing.T) {
	imgs := sampleImages()
	e := newTestEnv(t, withImages(&fakeBackend{}, imgs))
	var got []historyItem
	e.do(t, http.MethodGet, "/images/microsoft/iis/history").decode(t, &got)
	if len(got) != 2 || got[0].ID != "sha256:"+hex64('c') || got[1].ID != "sha256:"+hex64('b') {
		t.Fatalf("history %+v", got)
	}
	if got[0].Size != 200 || got[1].Size != 1000 || got[0].Comment != "Internet Information Services (IIS)" {
		t.Fatalf("sizes and comment %+v", got)
	}

	// Without its parent installed, the chain ends with <missing>.
	e2 := newTestEnv(t, withImages(&fakeBackend{}, imgs[2:]))
	e2.do(t, http.MethodGet, "/images/microsoft/iis:1.0.0.0/history").decode(t, &got)
	if len(got) != 2 || got[1].ID != "<missing>" {
		t.Fatalf("history %+v", got)
	}
}

func TestTagImage(t *testing.T) {
	f := withImages(&fakeBackend{}, sampleImages())
	f.tagFn = func(_ context.Context, image, repo, tag string) error {
		if repo == "microsoft/iis" {
			return fmt.Errorf("ref microsoft/iis:latest is kept by the provider: %w", errdefs.ErrConflict)
		}
		return nil
	}
	e := newTestEnv(t, f)
	for _, tc := range []struct{ name, path, want string }{
		{"repo and tag", "/v1.51/images/nanoserver/tag?repo=mynano&tag=1", "Tag sha256:" + hex64('a') + " mynano:1"},
		{"normalised repository, default tag", "/images/cccc/tag?repo=docker.io/library/web", "Tag sha256:" + hex64('c') + " web:latest"},
		{"repository with a slash", "/images/windowsservercore:latest/tag?repo=docker.io/me/wsc&tag=v2", "Tag sha256:" + hex64('b') + " me/wsc:v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, tc.path)
			if r.status != http.StatusCreated {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if calls := f.called(); calls[len(calls)-1] != tc.want {
				t.Fatalf("calls %q, want %q last", calls, tc.want)
			}
		})
	}
	e.do(t, http.MethodPost, "/images/nanoserver/tag?repo=microsoft/iis").wantError(t, http.StatusConflict, "kept by the provider")
	e.do(t, http.MethodPost, "/images/nothere/tag?repo=x").wantError(t, http.StatusNotFound, "No such image: nothere")
	e.do(t, http.MethodPost, "/images/nanoserver/tag?repo=Bad").wantError(t, http.StatusBadRequest, "invalid reference format")
}

// TestDeleteImageUntags checks that rmi of one ref of several only untags.
func TestDeleteImageUntags(t *testing.T) {
	imgs := sampleImages()
	imgs[0].Refs = append(imgs[0].Refs, "mynano:1")
	f := withImages(&fakeBackend{}, imgs)
	f.untagFn = func(_ context.Context, repo, tag string) (bool, error) {
		if repo == "nanoserver" {
			return false, fmt.Errorf("ref %s:%s: untag the others first: %w", repo, tag, errdefs.ErrFailedPrecondition)
		}
		return false, nil
	}
	e := newTestEnv(t, f)
	var got []deleteItem
	e.do(t, http.MethodDelete, "/images/mynano:1").decode(t, &got)
	if !slices.Equal(got, []deleteItem{{Untagged: "mynano:1"}}) {
		t.Fatalf("got %+v", got)
	}
	if calls := f.called(); calls[len(calls)-1] != "Untag mynano:1" {
		t.Fatalf("calls %q", calls)
	}
	r := e.do(t, http.MethodDelete, "/images/nanoserver:latest")
	if r.status == http.StatusOK || !strings.Contains(string(r.body), "untag the others first") {
		t.Fatalf("rmi of the image's own ref: %d %s", r.status, r.body)
	}
}

func TestDeleteImage(t *testing.T) {
	imgs := sampleImages()
	c1 := func(state string) []api.Container {
		return []api.Container{{ID: hex64('e'), Name: "c1", ImageDigest: "sha256:" + hex64('a'), State: state}}
	}
	byContainer := &provider.DependentsError{Image: "NanoServer 10.0.10586.0", Dependents: []string{"container c1"}}
	byChild := &provider.DependentsError{Image: "WindowsServerCore 10.0.14393.0", Dependents: []string{"image microsoft/iis 1.0.0.0", "container c2"}}
	untagged := []deleteItem{{Untagged: "nanoserver:10.0.10586.0"}, {Untagged: "nanoserver:latest"}, {Untagged: "nanoserver@sha256:" + hex64('a')}}
	deleted := []deleteItem{
		{Untagged: "nanoserver:10.0.10586.0"}, {Untagged: "nanoserver:latest"},
		{Untagged: "nanoserver@sha256:" + hex64('a')}, {Deleted: "sha256:" + hex64('a')},
	}
	for _, tc := range []struct {
		name, ref  string
		images     []api.Image // default sampleImages
		containers []api.Container
		removeErr  error
		status     int
		want       []deleteItem
		wantMsg    string
		untag      bool // UntagUsedImage is called
	}{
		{name: "by name and tag", ref: "nanoserver:10.0.10586.0", status: 200, want: deleted},
		{name: "by short id", ref: "aaaaaaaaaaaa", status: 200, want: deleted},
		{name: "by the shortest id prefix", ref: "aaaa", status: 200, want: deleted},
		{name: "by digest", ref: "sha256:" + hex64('a'), status: 200, want: deleted},
		{
			name: "container by ref", ref: "nanoserver:10.0.10586.0", containers: c1(api.ContainerStopped), removeErr: byContainer,
			status: 409, wantMsg: `conflict: unable to remove repository reference "nanoserver:10.0.10586.0" (must force) - container c1 is using its referenced image aaaaaaaaaaaa`,
		},
		{
			name: "stopped container by id", ref: "aaaa", containers: c1(api.ContainerStopped), removeErr: byContainer,
			status: 409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is being used by stopped container c1",
		},
		{
			name: "running container by id", ref: "aaaa", containers: c1(api.ContainerRunning), removeErr: byContainer,
			status: 409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (cannot be forced) - image is being used by running container c1",
		},
		{
			name: "forced, stopped container by ref", ref: "nanoserver:latest?force=1", containers: c1(api.ContainerStopped), removeErr: byContainer,
			status: 200, want: untagged, untag: true,
		},
		{
			name: "forced, created container by id", ref: "aaaaaaaaaaaa?force=true", containers: c1(api.ContainerCreated), removeErr: byContainer,
			status: 200, want: untagged, untag: true,
		},
		{
			name: "forced, running container by ref", ref: "nanoserver:10.0.10586.0?force=1", containers: c1(api.ContainerRunning), removeErr: byContainer,
			status: 200, want: untagged, untag: true,
		},
		{
			name: "forced, running container by id", ref: "sha256:" + hex64('a') + "?force=1", containers: c1(api.ContainerRunning), removeErr: byContainer,
			status: 409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (cannot be forced) - image is being used by running container c1",
		},
		{
			name: "forced, untagged already", ref: "aaaa?force=1", containers: c1(api.ContainerStopped), removeErr: byContainer,
			images: func() []api.Image { i := sampleImages(); i[0].Refs = nil; return i }(),
			status: 409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (cannot be forced) - image is being used by stopped container c1, and providerd keeps the image of a container until the container is removed",
		},
		{
			name: "child image", ref: "windowsservercore:latest", removeErr: byChild,
			status: 409, wantMsg: "conflict: unable to delete bbbbbbbbbbbb (cannot be forced) - image has dependent child images",
		},
		{
			name: "forced, child image", ref: "bbbb?force=1", removeErr: byChild,
			status: 409, wantMsg: "conflict: unable to delete bbbbbbbbbbbb (cannot be forced) - image has dependent child images",
		},
		{
			name: "by id, in two repositories", ref: "aaaa",
			images: func() []api.Image { i := sampleImages(); i[0].Refs = append(i[0].Refs, "mynano:base"); return i }(),
			status: 409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is referenced in multiple repositories",
		},
		{
			name: "forced, by id, in two repositories", ref: "aaaa?force=1",
			images: func() []api.Image { i := sampleImages(); i[0].Refs = append(i[0].Refs, "mynano:base"); return i }(),
			status: 200,
		},
		{name: "bad force", ref: "aaaa?force=maybe", status: 400, wantMsg: "invalid value for force"},
		{name: "unknown", ref: "nanoserver:1.2", status: 404, wantMsg: "No such image: nanoserver:1.2"},
		{name: "a prefix shorter than an id's", ref: "aaa", status: 404, wantMsg: "No such image: aaa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images := imgs
			if tc.images != nil {
				images = tc.images
			}
			f := withImages(&fakeBackend{}, images)
			f.containersFn = func(context.Context) ([]api.Container, error) { return tc.containers, nil }
			f.removeFn = func(_ context.Context, opts provider.RemoveOptions) (api.RemoveResult, error) {
				if tc.removeErr != nil {
					return api.RemoveResult{}, tc.removeErr
				}
				for _, img := range images {
					if img.Digest == opts.ID {
						return api.RemoveResult{Removed: []api.Image{img}}, nil
					}
				}
				t.Errorf("Remove of %q", opts.ID)
				return api.RemoveResult{}, nil
			}
			f.untagUsedFn = func(_ context.Context, image string) ([]string, error) {
				if image != "sha256:"+hex64('a') {
					t.Errorf("UntagUsedImage of %q", image)
				}
				return []string{"nanoserver:10.0.10586.0", "nanoserver:latest"}, nil
			}
			e := newTestEnv(t, f)
			r := e.do(t, http.MethodDelete, "/v1.50/images/"+tc.ref)
			if called := slices.ContainsFunc(f.called(), func(c string) bool { return strings.HasPrefix(c, "UntagUsedImage") }); called != tc.untag {
				t.Errorf("UntagUsedImage called: %v, want %v", called, tc.untag)
			}
			if tc.status != http.StatusOK {
				r.wantError(t, tc.status, tc.wantMsg)
				return
			}
			var got []deleteItem
			r.decode(t, &got)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if last := got[len(got)-1]; !tc.untag && last.Deleted != "sha256:"+hex64('a') {
				t.Fatalf("last item %+v", last)
			}
		})
	}
}

func TestSearchImages(t *testing.T) {
	entries := []api.FindEntry{
		{Name: "NanoServer", Repository: "nanoserver", Version: "10.0.14393.0", Publisher: "CN=Microsoft", Description: "Container OS Image of Windows Server 2016 : Nano Server"},
		{Name: "microsoft/iis", Repository: "microsoft/iis", Version: "1.0.0.0", Publisher: "CN=Microsoft", Description: "Internet Information Services (IIS) installed in a Windows Server Core based container."},
		{Name: "microsoft/php", Repository: "microsoft/php", Version: "1.0.0.0", Publisher: "CN=Microsoft", Description: "PHP running on Internet Information Services (IIS)"},
		{Name: "demo/iis", Repository: "demo/iis", Version: "1.0.0.0", Publisher: "CN=Demo", Description: "a demo"},
	}
	f := &fakeBackend{findFn: func(context.Context, provider.FindOptions) ([]api.FindEntry, error) { return entries, nil }}
	e := newTestEnv(t, f)
	for _, tc := range []struct {
		name, query string
		want        []searchResult
	}{
		{"name or description", "term=iis", []searchResult{
			{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true},
			{Name: "microsoft/php", Description: entries[2].Description, IsOfficial: true},
			{Name: "demo/iis", Description: "a demo"},
		}},
		{"limit", "term=iis&limit=1", []searchResult{{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true}}},
		{"is-official false", "term=iis&filters=" + url.QueryEscape(`{"is-official":{"false":true}}`), []searchResult{{Name: "demo/iis", Description: "a demo"}}},
		{"case-insensitive", "term=NANO", []searchResult{{Name: "nanoserver", Description: entries[0].Description, IsOfficial: true}}},
		{"every repository", "term=*", []searchResult{
			{Name: "nanoserver", Description: entries[0].Description, IsOfficial: true},
			{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true},
			{Name: "microsoft/php", Description: entries[2].Description, IsOfficial: true},
			{Name: "demo/iis", Description: "a demo"},
		}},
		{"a namespace", "term=" + url.QueryEscape("microsoft/*"), []searchResult{
			{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true},
			{Name: "microsoft/php", Description: entries[2].Description, IsOfficial: true},
		}},
		{"a pattern matches the whole name, not the description", "term=" + url.QueryEscape("*IIS"), []searchResult{
			{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true},
			{Name: "demo/iis", Description: "a demo"},
		}},
		{"one character", "term=" + url.QueryEscape("microsoft/?hp"), []searchResult{{Name: "microsoft/php", Description: entries[2].Description, IsOfficial: true}}},
		{"a pattern that matches nothing", "term=" + url.QueryEscape("nothing*"), []searchResult{}},
		{"a pattern with the limit", "term=*&limit=2", []searchResult{
			{Name: "nanoserver", Description: entries[0].Description, IsOfficial: true},
			{Name: "microsoft/iis", Description: entries[1].Description, IsOfficial: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []searchResult
			e.do(t, http.MethodGet, "/v1.50/images/search?"+tc.query).decode(t, &got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// A pattern goes to Find as its name, which the index narrows; a
	// plain term is matched against every entry.
	if calls := f.called(); !slices.Contains(calls, "Find microsoft/*") || !slices.Contains(calls, "Find ") {
		t.Fatalf("calls %q", calls)
	}
	e.do(t, http.MethodGet, "/images/search?term=iis&limit=101").wantError(t, http.StatusBadRequest, "limit 101 is outside the range of [1, 100]")
	e.do(t, http.MethodGet, "/images/search?term=iis&limit=x").wantError(t, http.StatusBadRequest, "invalid limit")
	e.do(t, http.MethodGet, "/images/search?term=iis&filters="+url.QueryEscape(`{"stars":{"3":true}}`)).wantError(t, http.StatusNotImplemented, "filter 'stars'")
}

// configsOf answers the configs of sampleImages: WindowsServerCore has one
// history entry, microsoft/iis adds an empty-layer entry and a layer.
func configsOf(t *testing.T) func(context.Context, string) (ocispec.Image, error) {
	t.Helper()
	base := []ocispec.History{{Created: &created2, CreatedBy: "Apply image 10.0.14393.0"}}
	iis := append(slices.Clone(base),
		ocispec.History{CreatedBy: "cmd /S /C #(nop) ENV IIS=1", EmptyLayer: true},
		ocispec.History{CreatedBy: "cmd /S /C powershell Add-WindowsFeature Web-Server"})
	return func(_ context.Context, ref string) (ocispec.Image, error) {
		cfg := ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"}}
		cfg.RootFS.DiffIDs = []digest.Digest{digest.FromString("base")}
		switch ref {
		case "sha256:" + hex64('b'):
			cfg.History = base
		case "sha256:" + hex64('c'):
			cfg.History = iis
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromString("iis"))
		}
		return cfg, nil
	}
}

func TestImageHistoryFromConfig(t *testing.T) {
	f := withImages(&fakeBackend{}, sampleImages())
	f.configFn = configsOf(t)
	e := newTestEnv(t, f)
	var got []historyItem
	e.do(t, http.MethodGet, "/images/microsoft/iis/history").decode(t, &got)
	want := []struct {
		id, createdBy string
		size          int64
	}{
		{"sha256:" + hex64('c'), "cmd /S /C powershell Add-WindowsFeature Web-Server", 200},
		{"<missing>", "cmd /S /C #(nop) ENV IIS=1", 0},
		{"sha256:" + hex64('b'), "Apply image 10.0.14393.0", 1000},
	}
	if len(got) != len(want) {
		t.Fatalf("history %+v", got)
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].CreatedBy != w.createdBy || got[i].Size != w.size {
			t.Errorf("row %d: %+v, want %+v", i, got[i], w)
		}
	}
	if got[2].Created != created2.Unix() || !slices.Equal(got[0].Tags, []string{"microsoft/iis:1.0.0.0", "microsoft/iis:latest"}) {
		t.Errorf("created and tags %+v", got)
	}

	var insp imageInspect
	e.do(t, http.MethodGet, "/images/microsoft/iis/json").decode(t, &insp)
	if insp.Architecture != "amd64" || !slices.Equal(insp.RootFS.Layers, []string{digest.FromString("base").String(), digest.FromString("iis").String()}) {
		t.Fatalf("inspect %+v", insp)
	}
}
