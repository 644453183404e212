package provider

import (
	"context"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/store/meta"
)

// checkNameIndex compares, for every name and repository of the
// installed images, Get by that name (the name index) with a scan of
// every record, and checks that every key of the index names a record.
func checkNameIndex(t *testing.T, p *Provider) {
	t.Helper()
	ctx := context.Background()
	all, err := p.Images(ctx, GetOptions{Name: "*"})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"NoSuchImage": true}
	for _, im := range all {
		names[im.Name], names[strings.ToUpper(im.Repository)] = true, true
	}
	for n := range names {
		got, err := p.Images(ctx, GetOptions{Name: n})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, im := range all {
			if strings.EqualFold(im.Name, n) || strings.EqualFold(im.Repository, n) {
				want = append(want, im.Digest+" "+im.Version)
			}
		}
		var have []string
		for _, im := range got {
			have = append(have, im.Digest+" "+im.Version)
		}
		if !slices.Equal(have, want) {
			t.Fatalf("Get %q: %q, a scan gives %q", n, have, want)
		}
	}
	// The refs by digest agree with a scan of the refs.
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		all, err := listRefs(tx)
		if err != nil {
			return err
		}
		n := 0
		err = meta.GetRefDigestsBucket(tx).ForEach(func(k, _ []byte) error { n++; return nil })
		total := 0
		for d, refs := range all {
			total += len(refs)
			if got := refsOf(tx, d); !slices.Equal(got, refs) {
				t.Errorf("refs of %s: %q by digest, %q by a scan", d, got, refs)
			}
		}
		if n != total {
			t.Errorf("%d refs by digest, %d refs", n, total)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		return meta.GetImageNamesBucket(tx).ForEach(func(k, _ []byte) error {
			_, d, _ := strings.Cut(string(k), "\x00")
			if meta.GetImagesBucket(tx).Get([]byte(d)) == nil {
				t.Errorf("name key %q names no record", k)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestImagesByNameIndex: Get by name answers from the name index as a
// scan does, through installs, tags and removals.
func TestImagesByNameIndex(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	checkNameIndex(t, e.p)
	for _, n := range []string{"NanoServer", "microsoft/iis", "microsoft/sqlite"} {
		if jb := e.install(api.InstallRequest{Name: n}); jb.State != api.JobSucceeded {
			t.Fatalf("install %s: %s %s", n, jb.State, jb.Message)
		}
		checkNameIndex(t, e.p)
	}
	if jb := e.install(api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}); jb.State != api.JobSucceeded {
		t.Fatalf("install: %s %s", jb.State, jb.Message)
	}
	checkNameIndex(t, e.p)
	if _, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}); err != nil {
		t.Fatal(err)
	}
	checkNameIndex(t, e.p)
	if err := e.p.Tag(ctx, "NanoServer", "mine", "v1"); err != nil {
		t.Fatal(err)
	}
	checkNameIndex(t, e.p)
	if err := e.p.Tag(ctx, "microsoft/iis", "mine", "v1"); err != nil { // moves mine:v1
		t.Fatal(err)
	}
	checkNameIndex(t, e.p)
	if _, err := e.p.Untag(ctx, "mine", "v1"); err != nil {
		t.Fatal(err)
	}
	checkNameIndex(t, e.p)
	got, err := e.p.Images(ctx, GetOptions{Name: "nanoserver"})
	if err != nil || len(got) != 1 || got[0].Version != "10.0.14393.0" {
		t.Fatalf("Get nanoserver after a removal: %+v, %v", got, err)
	}
}
