package docker

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/containerprovider/containerprovider/api"
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
	e := newTestEnv(t, withImages(&fakeBackend{}, sampleImages()))
	e.do(t, http.MethodPost, "/images/nanoserver/tag?repo=mynano&tag=1").wantError(t, http.StatusNotImplemented, "tagging an image is not supported by providerd")
	e.do(t, http.MethodPost, "/images/nothere/tag?repo=x").wantError(t, http.StatusNotFound, "No such image: nothere")
	e.do(t, http.MethodPost, "/images/nanoserver/tag?repo=Bad").wantError(t, http.StatusBadRequest, "invalid reference format")
}

func TestDeleteImage(t *testing.T) {
	imgs := sampleImages()
	for _, tc := range []struct {
		name, ref string
		removeErr error
		status    int
		want      []deleteItem
		wantMsg   string
	}{
		{name: "by name and tag", ref: "nanoserver:10.0.10586.0", status: 200, want: []deleteItem{
			{Untagged: "nanoserver:10.0.10586.0"}, {Untagged: "nanoserver:latest"},
			{Untagged: "nanoserver@sha256:" + hex64('a')}, {Deleted: "sha256:" + hex64('a')},
		}},
		{name: "by short id", ref: "aaaaaaaaaaaa", status: 200},
		{name: "by digest", ref: "sha256:" + hex64('a'), status: 200},
		{
			name: "container by ref", ref: "nanoserver:10.0.10586.0",
			removeErr: &provider.DependentsError{Image: "NanoServer 10.0.10586.0", Dependents: []string{"container c1"}},
			status:    409, wantMsg: `conflict: unable to remove repository reference "nanoserver:10.0.10586.0" (must force) - container c1 is using its referenced image aaaaaaaaaaaa`,
		},
		{
			name: "container by id", ref: "aaaa",
			removeErr: &provider.DependentsError{Image: "NanoServer 10.0.10586.0", Dependents: []string{"container c1"}},
			status:    409, wantMsg: "conflict: unable to delete aaaaaaaaaaaa (must be forced) - image is being used by stopped container c1",
		},
		{
			name: "child image", ref: "windowsservercore:latest",
			removeErr: &provider.DependentsError{Image: "WindowsServerCore 10.0.14393.0", Dependents: []string{"image microsoft/iis 1.0.0.0"}},
			status:    409, wantMsg: "conflict: unable to delete bbbbbbbbbbbb (cannot be forced) - image has dependent child images",
		},
		{name: "unknown", ref: "nanoserver:1.2", status: 404, wantMsg: "No such image: nanoserver:1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withImages(&fakeBackend{}, imgs)
			f.removeFn = func(_ context.Context, opts provider.RemoveOptions) (api.RemoveResult, error) {
				if tc.removeErr != nil {
					return api.RemoveResult{}, tc.removeErr
				}
				for _, img := range imgs {
					if img.Digest == opts.ID {
						return api.RemoveResult{Removed: []api.Image{img}}, nil
					}
				}
				t.Errorf("Remove of %q", opts.ID)
				return api.RemoveResult{}, nil
			}
			e := newTestEnv(t, f)
			r := e.do(t, http.MethodDelete, "/v1.50/images/"+tc.ref)
			if tc.status != http.StatusOK {
				r.wantError(t, tc.status, tc.wantMsg)
				return
			}
			var got []deleteItem
			r.decode(t, &got)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if last := got[len(got)-1]; last.Deleted != "sha256:"+hex64('a') {
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []searchResult
			e.do(t, http.MethodGet, "/v1.50/images/search?"+tc.query).decode(t, &got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	e.do(t, http.MethodGet, "/images/search?term=iis&limit=101").wantError(t, http.StatusBadRequest, "limit 101 is outside the range of [1, 100]")
	e.do(t, http.MethodGet, "/images/search?term=iis&limit=x").wantError(t, http.StatusBadRequest, "invalid limit")
	e.do(t, http.MethodGet, "/images/search?term=iis&filters="+url.QueryEscape(`{"stars":{"3":true}}`)).wantError(t, http.StatusNotImplemented, "filter 'stars'")
}
