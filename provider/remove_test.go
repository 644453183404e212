package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

func (e *env) mustInstall(req api.InstallRequest) api.Job {
	e.t.Helper()
	jb := e.install(req)
	if jb.State != api.JobSucceeded {
		e.t.Fatalf("install %s: %s %+v", req.Name, jb.State, jb.Error)
	}
	return jb
}

func imageNames(imgs []api.Image) []string {
	out := []string{}
	for _, img := range imgs {
		out = append(out, img.Name+" "+img.Version)
	}
	return out
}

func TestRemoveRefusesImageWithChild(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	before := e.blobs()

	_, err := e.p.Remove(ctx, RemoveOptions{Name: "WindowsServerCore"})
	var de *DependentsError
	if !errors.As(err, &de) {
		t.Fatalf("Remove of the base: %v, want a *DependentsError", err)
	}
	mustClass(t, err, errdefs.ErrConflict)
	if de.Image != "WindowsServerCore 10.0.14393.0" || !slices.Equal(de.Dependents, []string{"image microsoft/iis 1.0.0.0"}) {
		t.Errorf("dependents error %+v", de)
	}
	imgs, _ := e.p.Images(ctx, GetOptions{})
	if len(imgs) != 2 || len(e.blobs()) != len(before) {
		t.Fatalf("a refused Remove changed something: %d images, %d blobs", len(imgs), len(e.blobs()))
	}

	// Both selected at once: the child is not a dependent then.
	// Remove the child, then the base: every blob goes.
	res, err := e.p.Remove(ctx, RemoveOptions{Name: "microsoft/iis"})
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Removed); !slices.Equal(got, []string{"microsoft/iis 1.0.0.0"}) {
		t.Errorf("removed %q", got)
	}
	if res.BlobsDeleted != 3 || res.BytesFreed <= 0 {
		t.Errorf("child removal freed %d blobs, %d bytes; want its manifest, config and layer", res.BlobsDeleted, res.BytesFreed)
	}
	res, err = e.p.Remove(ctx, RemoveOptions{Name: "WindowsServerCore"})
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Removed); !slices.Equal(got, []string{"WindowsServerCore 10.0.14393.0"}) {
		t.Errorf("removed %q", got)
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("%d blobs left after removing every image", len(b))
	}
	if imgs, _ := e.p.Images(ctx, GetOptions{}); len(imgs) != 0 {
		t.Errorf("images left: %q", imageNames(imgs))
	}
	err = e.p.db.View(ctx, func(tx *bolt.Tx) error {
		if k, _ := meta.GetRefsBucket(tx).Cursor().First(); k != nil {
			t.Errorf("refs left: %s", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.p.Remove(ctx, RemoveOptions{Name: "WindowsServerCore"})
	mustClass(t, err, errdefs.ErrNotFound)
}

func TestRemoveParentAndChildTogether(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	wsc := e.cat.item("windowsservercore:10.0.14393.0")
	iis := e.cat.item("microsoft/iis:1.0.0.0")
	// By id the base alone is refused; by a name pattern matching both,
	// with force, it is not.
	_, err := e.p.Remove(ctx, RemoveOptions{ID: wsc.Digest.String()})
	mustClass(t, err, errdefs.ErrConflict)
	res, err := e.p.Remove(ctx, RemoveOptions{Name: "*i*", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 || res.Removed[0].Digest != iis.Digest.String() {
		t.Errorf("removed %q", imageNames(res.Removed))
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("%d blobs left", len(b))
	}
}

func TestRemoveRefusedByContainer(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	jb := e.mustInstall(nano10586())
	dgst := jb.Result.Digest
	for _, state := range []string{"Created", "Stopped"} {
		t.Run(state, func(t *testing.T) {
			rec, _ := json.Marshal(containerRecord{Name: "web1", Image: dgst, State: state, Created: time.Now()})
			err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
				return meta.GetContainersBucket(tx).Put([]byte("c0ffee"), rec)
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"})
			var de *DependentsError
			if !errors.As(err, &de) || !slices.Equal(de.Dependents, []string{"container web1"}) {
				t.Fatalf("Remove: %v, want the container named", err)
			}
			if !strings.Contains(err.Error(), "container web1") {
				t.Errorf("error text %q", err)
			}
		})
	}
	if imgs, _ := e.p.Images(ctx, GetOptions{}); len(imgs) != 1 {
		t.Fatalf("images %q", imageNames(imgs))
	}
	err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		return meta.GetContainersBucket(tx).Delete([]byte("c0ffee"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"}); err != nil {
		t.Fatalf("Remove without the container: %v", err)
	}
}

func TestRemoveByIDAndVersion(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	e.mustInstall(api.InstallRequest{Name: "NanoServer"})
	old := e.cat.item("nanoserver:10.0.10586.0")

	res, err := e.p.Remove(ctx, RemoveOptions{ID: old.Digest.Encoded()[:6]})
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Removed); !slices.Equal(got, []string{"NanoServer 10.0.10586.0"}) {
		t.Errorf("removed by id prefix: %q", got)
	}
	imgs, _ := e.p.Images(ctx, GetOptions{})
	if got := imageNames(imgs); !slices.Equal(got, []string{"NanoServer 10.0.14393.0"}) {
		t.Errorf("left: %q", got)
	}
	// latest moved with the removal: it stays on the remaining version.
	if !slices.Contains(imgs[0].Refs, "nanoserver:latest") {
		t.Errorf("refs %q", imgs[0].Refs)
	}

	e.mustInstall(nano10586())
	res, err = e.p.Remove(ctx, RemoveOptions{Name: "nanoserver", VersionOptions: api.VersionOptions{MaximumVersion: "10.0.10586.0"}})
	if err != nil || !slices.Equal(imageNames(res.Removed), []string{"NanoServer 10.0.10586.0"}) {
		t.Errorf("remove by max version: %q, %v", imageNames(res.Removed), err)
	}
}

// putFakeImage writes a record that references no blob.
func putFakeImage(t *testing.T, p *Provider, name string, d digest.Digest) {
	t.Helper()
	rec := imageRecord{Name: name, Repository: strings.ToLower(name), Version: "1.0.0.0", Digest: d, IsOSImage: true}
	if err := p.db.Update(context.Background(), func(tx *bolt.Tx) error { return putImage(tx, rec) }); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveSelectionErrors(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	a := digest.Digest("sha256:abcd" + strings.Repeat("1", 60))
	b := digest.Digest("sha256:abcd" + strings.Repeat("2", 60))
	putFakeImage(t, e.p, "First", a)
	putFakeImage(t, e.p, "Second", b)
	tests := []struct {
		name string
		opts RemoveOptions
		want error
		text []string
	}{
		{name: "nothing", opts: RemoveOptions{}, want: errdefs.ErrInvalidArgument},
		{name: "name and id", opts: RemoveOptions{Name: "First", ID: "abcd"}, want: errdefs.ErrInvalidArgument},
		{name: "ambiguous prefix", opts: RemoveOptions{ID: "abcd"}, want: errdefs.ErrInvalidArgument,
			text: []string{a.Encoded(), b.Encoded(), "ambiguous"}},
		{name: "short prefix", opts: RemoveOptions{ID: "abc"}, want: errdefs.ErrInvalidArgument},
		{name: "not hex", opts: RemoveOptions{ID: "First"}, want: errdefs.ErrInvalidArgument},
		{name: "unknown prefix", opts: RemoveOptions{ID: "ffff"}, want: errdefs.ErrNotFound},
		{name: "unknown digest", opts: RemoveOptions{ID: "sha256:" + strings.Repeat("f", 64)}, want: errdefs.ErrNotFound},
		{name: "unknown name", opts: RemoveOptions{Name: "Third"}, want: errdefs.ErrNotFound},
		{name: "bad versions", opts: RemoveOptions{Name: "First", VersionOptions: api.VersionOptions{MinimumVersion: "2", MaximumVersion: "1"}},
			want: errdefs.ErrInvalidArgument},
		{name: "version with id", opts: RemoveOptions{ID: "abcd1", VersionOptions: api.VersionOptions{RequiredVersion: "1"}},
			want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.Remove(context.Background(), tt.opts)
			mustClass(t, err, tt.want)
			for _, s := range tt.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	if imgs, _ := e.p.Images(context.Background(), GetOptions{}); len(imgs) != 2 {
		t.Errorf("refused removals changed the images: %q", imageNames(imgs))
	}
	res, err := e.p.Remove(context.Background(), RemoveOptions{ID: "sha256:abcd2"})
	if err != nil || !slices.Equal(imageNames(res.Removed), []string{"Second 1.0.0.0"}) {
		t.Errorf("unique prefix: %q, %v", imageNames(res.Removed), err)
	}
}

func TestGarbageCollectionKeepsLeasedBlobs(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	installed := len(e.blobs())

	data := []byte("a blob a running job still needs")
	d := digest.FromBytes(data)
	if _, err := content.WriteBlob(ctx, e.p.cs, "test", bytes.NewReader(data), int64(len(data)), d); err != nil {
		t.Fatal(err)
	}
	stray := []byte("a blob nothing references")
	if _, err := content.WriteBlob(ctx, e.p.cs, "stray", bytes.NewReader(stray), int64(len(stray)), digest.FromBytes(stray)); err != nil {
		t.Fatal(err)
	}
	err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		b, err := meta.CreateJobLeasesBucket(tx, "job1")
		if err != nil {
			return err
		}
		return b.Put([]byte(d), []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	n, freed, err := e.p.collectGarbage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || freed != int64(len(stray)) {
		t.Errorf("collected %d blobs, %d bytes; want only the stray one", n, freed)
	}
	if _, err := e.p.cs.Info(ctx, d); err != nil {
		t.Errorf("leased blob collected: %v", err)
	}
	if got := len(e.blobs()); got != installed+1 {
		t.Errorf("%d blobs, want the image's %d and the leased one", got, installed)
	}

	err = e.p.db.Update(ctx, func(tx *bolt.Tx) error { return meta.DeleteJobLeasesBucket(tx, "job1") })
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := e.p.collectGarbage(ctx); err != nil || n != 1 {
		t.Errorf("after the lease: collected %d, %v; want 1", n, err)
	}
	if _, err := e.p.cs.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("unleased blob kept: %v", err)
	}
}

func TestImagesFilters(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	e.mustInstall(api.InstallRequest{Name: "NanoServer"})
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	demo := digest.Digest("sha256:" + strings.Repeat("d", 64))
	err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		return putImage(tx, imageRecord{Name: "WindowsServerCoreIIS", Repository: "demo/iis", Publisher: "CN=Demo",
			Version: "1.0.0.0", Digest: demo, Config: ocispec.Descriptor{}})
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts GetOptions
		want []string
	}{
		{name: "all", opts: GetOptions{}, want: []string{"microsoft/iis 1.0.0.0", "NanoServer 10.0.10586.0", "NanoServer 10.0.14393.0",
			"WindowsServerCore 10.0.14393.0", "WindowsServerCoreIIS 1.0.0.0"}},
		{name: "name", opts: GetOptions{Name: "nanoserver"}, want: []string{"NanoServer 10.0.10586.0", "NanoServer 10.0.14393.0"}},
		{name: "wildcard", opts: GetOptions{Name: "Windows*"}, want: []string{"WindowsServerCore 10.0.14393.0", "WindowsServerCoreIIS 1.0.0.0"}},
		{name: "repository", opts: GetOptions{Name: "microsoft/*"}, want: []string{"microsoft/iis 1.0.0.0"}},
		{name: "no match", opts: GetOptions{Name: "nothing"}, want: []string{}},
		{name: "publisher", opts: GetOptions{Publisher: "Demo"}, want: []string{"WindowsServerCoreIIS 1.0.0.0"}},
		{name: "publisher CN", opts: GetOptions{Publisher: "cn=demo"}, want: []string{"WindowsServerCoreIIS 1.0.0.0"}},
		{name: "required", opts: GetOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586"}},
			want: []string{"NanoServer 10.0.10586.0"}},
		{name: "minimum", opts: GetOptions{VersionOptions: api.VersionOptions{MinimumVersion: "10.0.14393.0"}},
			want: []string{"NanoServer 10.0.14393.0", "WindowsServerCore 10.0.14393.0"}},
		{name: "maximum inclusive", opts: GetOptions{Name: "Nano*", VersionOptions: api.VersionOptions{MaximumVersion: "10.0.10586.0"}},
			want: []string{"NanoServer 10.0.10586.0"}},
		{name: "all versions", opts: GetOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{AllVersions: true}},
			want: []string{"NanoServer 10.0.10586.0", "NanoServer 10.0.14393.0"}},
		{name: "child of", opts: GetOptions{ChildOf: "WindowsServerCore:10.0.14393.0"}, want: []string{"microsoft/iis 1.0.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs, err := e.p.Images(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := imageNames(imgs); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	_, err = e.p.Images(ctx, GetOptions{VersionOptions: api.VersionOptions{AllVersions: true, RequiredVersion: "1.0"}})
	mustClass(t, err, errdefs.ErrInvalidArgument)
}

// TestRemoveOfSeveralNeedsForce: a name that selects more than one image
// removes nothing without Force, and the error lists the matches; WhatIf
// shows the plan and removes nothing; IDs remove exactly the images they
// name, together.
func TestRemoveOfSeveralNeedsForce(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	wsc := e.cat.item("windowsservercore:10.0.14393.0")
	iis := e.cat.item("microsoft/iis:1.0.0.0")
	before := e.records()

	_, err := e.p.Remove(ctx, RemoveOptions{Name: "*"})
	var me *MatchesError
	if !errors.As(err, &me) || !errdefs.IsConflict(err) {
		t.Fatalf("Remove(*) = %v, want a *MatchesError of class Conflict", err)
	}
	if got := imageNames(me.Matches); !slices.Equal(got, []string{"microsoft/iis 1.0.0.0", "WindowsServerCore 10.0.14393.0"}) {
		t.Errorf("matches %q", got)
	}
	if !strings.Contains(err.Error(), "matches 2 installed images (microsoft/iis 1.0.0.0, WindowsServerCore 10.0.14393.0)") {
		t.Errorf("message %q", err)
	}

	for _, opts := range []RemoveOptions{{Name: "*", Force: true, WhatIf: true}, {IDs: []string{iis.Digest.String(), wsc.Digest.Encoded()[:8]}, WhatIf: true}} {
		res, err := e.p.Remove(ctx, opts)
		if err != nil || !res.WhatIf || len(res.Removed) != 2 || res.BlobsDeleted != 0 {
			t.Fatalf("Remove(%+v) = %+v, %v", opts, res, err)
		}
	}
	// The plan checks as the removal does: the base alone is refused.
	_, err = e.p.Remove(ctx, RemoveOptions{ID: wsc.Digest.String(), WhatIf: true})
	mustClass(t, err, errdefs.ErrConflict)
	// Without force, the plan of several is the same refusal.
	_, err = e.p.Remove(ctx, RemoveOptions{Name: "*", WhatIf: true})
	if !errors.As(err, &me) {
		t.Fatalf("Remove(*, WhatIf) = %v, want a *MatchesError", err)
	}
	if after := e.records(); len(after) != len(before) {
		t.Fatalf("%d records after refusals and plans, %d before", len(after), len(before))
	}

	res, err := e.p.Remove(ctx, RemoveOptions{IDs: []string{wsc.Digest.String(), iis.Digest.String()}})
	if err != nil || len(res.Removed) != 2 || res.WhatIf {
		t.Fatalf("Remove(IDs) = %+v, %v", res, err)
	}
	if len(e.records()) != 0 {
		t.Fatal("records left")
	}
}
