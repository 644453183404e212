package provider

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/store/meta"
)

// listedFromRecords is the listing of every image built the slow way, from
// the records and the refs, as each image's JSON.
func listedFromRecords(t *testing.T, p *Provider) [][]byte {
	t.Helper()
	var imgs []api.Image
	err := p.db.View(context.Background(), func(tx *bolt.Tx) error {
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		refs, err := listRefs(tx)
		if err != nil {
			return err
		}
		for i := range recs {
			imgs = append(imgs, recs[i].image(refs[recs[i].Digest]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sortImages(imgs)
	return encodeAll(t, imgs)
}

func encodeAll(t *testing.T, imgs []api.Image) [][]byte {
	t.Helper()
	out := [][]byte{}
	for _, img := range imgs {
		b, err := encodeImage(img)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// listedFromView reads the listing view through ImagesPage, n per page.
func listedFromView(t *testing.T, p *Provider, n int) [][]byte {
	t.Helper()
	out := [][]byte{}
	after := ""
	for range 10_000 {
		page, err := p.ImagesPage(context.Background(), after, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Images) > n {
			t.Fatalf("a page of %d images, asked for %d", len(page.Images), n)
		}
		for _, raw := range page.Images {
			out = append(out, raw)
		}
		if page.Next == "" {
			return out
		}
		after = page.Next
	}
	t.Fatal("ImagesPage never ends")
	return nil
}

func sameListing(t *testing.T, step string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d images listed, the records give %d", step, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: image %d listed as\n%s\nthe records give\n%s", step, i, got[i], want[i])
		}
	}
}

// testRecord is a layerless record of name and version.
func testRecord(name, version string) imageRecord {
	d := digest.FromString(name + "@" + version)
	now := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	return imageRecord{
		Name: name, Repository: "repo-" + name, Publisher: "CN=Test <x&y>", Version: version, Size: 700,
		Created: now, Installed: now, Digest: d, Source: "catalog",
		Manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 400},
		Config:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c" + name + version), Size: 300},
	}
}

// TestImageListStaysInStep runs random installs, reinstalls under another
// name, tags, untags and removes, and after each step compares the
// listing view with the listing built from the records and refs: the same
// images, the same JSON, the same order; and Images with no option with
// both.
func TestImageListStaysInStep(t *testing.T) {
	e := newBareEnv(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"NanoServer", "nanoserver", "IIS", "App", "app"}
	versions := []string{"1.0", "1.0.0", "2.0", "10.0.14393.0", "1.0-rc1", "latest-build", "9"}
	var installed []imageRecord
	for step := range 300 {
		var what string
		err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
			switch op := rng.IntN(10); {
			case op < 4 || len(installed) == 0:
				rec := testRecord(names[rng.IntN(len(names))], versions[rng.IntN(len(versions))])
				what = "install " + rec.label()
				installed = append(installed, rec)
				return putImage(tx, rec)
			case op < 5:
				// The same digest again, under another name and version.
				i := rng.IntN(len(installed))
				rec := installed[i]
				rec.Name, rec.Version = names[rng.IntN(len(names))], versions[rng.IntN(len(versions))]
				installed[i] = rec
				what = "rewrite as " + rec.label()
				return putImage(tx, rec)
			case op < 7:
				rec := installed[rng.IntN(len(installed))]
				tag := fmt.Sprint("t", rng.IntN(3))
				what = "tag " + rec.label() + " as other:" + tag
				return setRef(tx, "other", tag, rec.Digest)
			case op < 8:
				tag := fmt.Sprint("t", rng.IntN(3))
				what = "untag other:" + tag
				return deleteRef(tx, "other", tag)
			default:
				i := rng.IntN(len(installed))
				rec, ok, err := getImage(tx, installed[i].Digest)
				installed = append(installed[:i], installed[i+1:]...)
				if err != nil || !ok {
					what = "remove an image installed twice"
					return err
				}
				what = "remove " + rec.label()
				return deleteImage(tx, rec)
			}
		})
		if err != nil {
			t.Fatalf("step %d (%s): %v", step, what, err)
		}
		step := fmt.Sprintf("step %d (%s)", step, what)
		want := listedFromRecords(t, e.p)
		sameListing(t, step, listedFromView(t, e.p, 1+rng.IntN(5)), want)
		all, err := e.p.Images(ctx, GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sameListing(t, step+", Images", encodeAll(t, all), want)
	}
}

// TestImageListIsBuiltAfterAnUpgrade: a database of schema 7, whose image
// records have no listing view, gets one at the next start.
func TestImageListIsBuiltAfterAnUpgrade(t *testing.T) {
	e := newBareEnv(t)
	ctx := context.Background()
	err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		for i := range 30 {
			if err := putImage(tx, testRecord(fmt.Sprintf("Img%02d", i%7), fmt.Sprintf("1.%d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := listedFromRecords(t, e.p)
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to schema 7: no v1/imagelist.
	bdb, err := bolt.Open(filepath.Join(e.root, dbFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("v1")).DeleteBucket([]byte("imagelist")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, 7))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, Config{Root: e.root, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	sameListing(t, "after the upgrade", listedFromView(t, p, 4), want)
	if err := p.db.View(ctx, func(tx *bolt.Tx) error {
		if meta.ImageListNeedsBuild(tx) {
			t.Error("the start left the request for a build of the listing view")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestImagesPageRefusesAnEmptyPage(t *testing.T) {
	e := newBareEnv(t)
	if _, err := e.p.ImagesPage(context.Background(), "", 0); err == nil {
		t.Fatal("ImagesPage(n=0) = nil error")
	}
}

// TestImageListJSONIsTheAPIs: a view entry decodes to the api.Image that
// Images returns for a name.
func TestImageListJSONIsTheAPIs(t *testing.T) {
	e := newBareEnv(t)
	ctx := context.Background()
	rec := testRecord("IIS", "10.0.14393.0")
	if err := e.p.db.Update(ctx, func(tx *bolt.Tx) error { return putImage(tx, rec) }); err != nil {
		t.Fatal(err)
	}
	named, err := e.p.Images(ctx, GetOptions{Name: "IIS"})
	if err != nil || len(named) != 1 {
		t.Fatalf("Images(IIS) = %v, %v", named, err)
	}
	page, err := e.p.ImagesPage(ctx, "", 10)
	if err != nil || len(page.Images) != 1 {
		t.Fatalf("ImagesPage = %+v, %v", page, err)
	}
	var got api.Image
	if err := json.Unmarshal(page.Images[0], &got); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(named[0])
	have, _ := json.Marshal(got)
	if !bytes.Equal(want, have) {
		t.Fatalf("view entry %s\nImages(IIS) %s", have, want)
	}
	if len(got.Refs) != 2 || !bytes.Contains(page.Images[0], []byte("<x&y>")) {
		t.Errorf("view entry %s: want the refs repo-IIS:10.0.14393.0 and :latest, and the publisher unescaped", page.Images[0])
	}
}
