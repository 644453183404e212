package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

// testLimits keep the test archives, and the fuzzer's, small.
var testLimits = Limits{MaxEntries: 24, MaxJSON: 8192, MaxTotal: 64 << 10}

// fixture is a set of images and the bytes of their blobs.
type fixture struct {
	images []Image
	blobs  map[digest.Digest][]byte
}

func (fx *fixture) blob(b []byte, mt string) ocispec.Descriptor {
	d := digest.FromBytes(b)
	fx.blobs[d] = b
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

// layerBytes is a gzip-compressed tar holding one file of n random bytes
// made from seed: a layer that Read accepts.
func layerBytes(t testing.TB, seed uint64, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	data := randomBytes(seed, n)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("file%d", seed), Mode: 0o644, Size: int64(n)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

// addImage adds an image made of layers, whose manifest names base (an
// earlier image, or nil) as its base image. configPad makes the config
// bigger.
func (fx *fixture) addImage(t testing.TB, ref string, base *Image, layers []ocispec.Descriptor, configPad int) Image {
	t.Helper()
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers"},
		Author:   string(bytes.Repeat([]byte("x"), configPad)),
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    fx.blob(cb, ocispec.MediaTypeImageConfig),
		Layers:    layers,
	}
	m.SchemaVersion = 2
	if base != nil {
		m.Annotations = map[string]string{
			ocispec.AnnotationBaseImageDigest: base.Manifest.Digest.String(),
			ocispec.AnnotationBaseImageName:   base.RefName,
		}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img := Image{
		RefName:  ref,
		Manifest: fx.blob(mb, ocispec.MediaTypeImageManifest),
		Config:   m.Config,
		Layers:   layers,
	}
	img.Manifest.Annotations = map[string]string{ocispec.AnnotationRefName: refTag(ref), AnnotationContainerdName: ref}
	fx.images = append(fx.images, img)
	return img
}

// newFixture is a base image with two layers and two children that share
// them and add one layer each, parents first.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	fx := &fixture{blobs: map[digest.Digest][]byte{}}
	l1 := fx.blob(layerBytes(t, 1, 900), ocispec.MediaTypeImageLayerGzip)
	l2 := fx.blob(layerBytes(t, 2, 300), ocispec.MediaTypeImageLayerGzip)
	base := fx.addImage(t, "nanoserver:10.0.10586.0", nil, []ocispec.Descriptor{l1, l2}, 0)
	c1 := fx.blob(layerBytes(t, 3, 400), ocispec.MediaTypeImageLayerGzip)
	fx.addImage(t, "iis:1.0.0.0", &base, []ocispec.Descriptor{l1, l2, c1}, 0)
	c2 := fx.blob(layerBytes(t, 4, 200), ocispec.MediaTypeImageLayerGzip)
	fx.addImage(t, "demo:2.0.0.0", &base, []ocispec.Descriptor{l1, l2, c2}, 0)
	return fx
}

func (fx *fixture) opener() BlobOpener {
	return func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		b, ok := fx.blobs[desc.Digest]
		if !ok {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

func (fx *fixture) archive(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, fx.images, fx.opener()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func newStore(t testing.TB) content.Store {
	t.Helper()
	cs, err := content.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// storeState is every committed blob and every ingest of a store.
func storeState(t testing.TB, cs content.Store) (blobs []digest.Digest, ingests []string) {
	t.Helper()
	ctx := context.Background()
	if err := cs.Walk(ctx, func(i content.Info) error {
		blobs = append(blobs, i.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st, err := cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		ingests = append(ingests, s.Ref)
	}
	slices.Sort(blobs)
	return blobs, ingests
}

// tarEntry is one entry of a tar, for tests that take archives apart.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func untar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: *hdr, data: data})
	}
}

func retar(t testing.TB, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := e.hdr
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	a := fx.archive(t)
	if b := fx.archive(t); !bytes.Equal(a, b) {
		t.Fatal("two Writes of the same images differ")
	}

	cs := newStore(t)
	c, err := Read(ctx, bytes.NewReader(a), int64(len(a)), cs, testLimits)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	assertImages(t, c.Images, fx.images)
	for d, b := range fx.blobs {
		ra, err := cs.ReaderAt(ctx, d)
		if err != nil {
			t.Fatalf("blob %s not in the store: %v", d, err)
		}
		got, err := io.ReadAll(content.NewSectionReader(ra))
		ra.Close()
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("blob %s: stored bytes differ (%v)", d, err)
		}
	}
	for _, img := range fx.images {
		if !bytes.Equal(c.Manifests[img.Manifest.Digest], fx.blobs[img.Manifest.Digest]) {
			t.Errorf("image %s: Contents.Manifests differs", img.RefName)
		}
		if !bytes.Equal(c.Configs[img.Config.Digest], fx.blobs[img.Config.Digest]) {
			t.Errorf("image %s: Contents.Configs differs", img.RefName)
		}
	}
	blobs, ingests := storeState(t, cs)
	if len(blobs) != len(fx.blobs) || len(ingests) != 0 {
		t.Errorf("store holds %d blobs and %d ingests, want %d and 0", len(blobs), len(ingests), len(fx.blobs))
	}

	// Reading again into the same store skips every blob and succeeds.
	if _, err := Read(ctx, bytes.NewReader(a), int64(len(a)), cs, testLimits); err != nil {
		t.Fatalf("second Read: %v", err)
	}
	if again, ingests := storeState(t, cs); !slices.Equal(again, blobs) || len(ingests) != 0 {
		t.Errorf("second Read changed the store")
	}
}

func assertImages(t *testing.T, got, want []Image) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d images, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.RefName != w.RefName || !descEqual(g.Manifest, w.Manifest) || !descEqual(g.Config, w.Config) || len(g.Layers) != len(w.Layers) {
			t.Errorf("image %d: got %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.Layers {
			if !descEqual(g.Layers[j], w.Layers[j]) {
				t.Errorf("image %d layer %d: got %+v, want %+v", i, j, g.Layers[j], w.Layers[j])
			}
		}
	}
}

func descEqual(a, b ocispec.Descriptor) bool {
	return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size &&
		fmt.Sprint(a.Annotations) == fmt.Sprint(b.Annotations)
}

// TestArchiveLayout parses the archive as an OCI image layout and as a
// docker archive.
func TestArchiveLayout(t *testing.T) {
	fx := newFixture(t)
	entries := untar(t, fx.archive(t))
	files := map[string][]byte{}
	var names []string
	for _, e := range entries {
		if _, dup := files[e.hdr.Name]; dup {
			t.Errorf("entry %s twice", e.hdr.Name)
		}
		files[e.hdr.Name] = e.data
		names = append(names, e.hdr.Name)
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.ModTime.Unix() != 0 {
			t.Errorf("entry %s: uid %d gid %d mtime %v", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime)
		}
		if e.hdr.Typeflag != tar.TypeReg && e.hdr.Typeflag != tar.TypeDir {
			t.Errorf("entry %s: type %q", e.hdr.Name, e.hdr.Typeflag)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}
	// Each blob once, and nothing else under blobs/.
	nblobs := 0
	for d, b := range fx.blobs {
		got, ok := files["blobs/sha256/"+d.Encoded()]
		if !ok || !bytes.Equal(got, b) {
			t.Errorf("blob %s missing or different", d)
		}
		nblobs++
	}
	if want := nblobs + 5; len(entries) != want { // blobs/, blobs/sha256/, index.json, manifest.json, oci-layout
		t.Errorf("%d entries, want %d: %v", len(entries), want, names)
	}

	var layout ocispec.ImageLayout
	if err := json.Unmarshal(files["oci-layout"], &layout); err != nil || layout.Version != "1.0.0" {
		t.Errorf("oci-layout %s: %v", files["oci-layout"], err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != len(fx.images) {
		t.Fatalf("index.json: %s", files["index.json"])
	}
	// ref.name carries the tag, io.containerd.image.name the whole name,
	// as docker 25 and containerd write them.
	tags := []string{"10.0.10586.0", "1.0.0.0", "2.0.0.0"}
	for i, d := range idx.Manifests {
		img := fx.images[i]
		if d.Digest != img.Manifest.Digest || d.Size != img.Manifest.Size || d.MediaType != ocispec.MediaTypeImageManifest ||
			d.Annotations[ocispec.AnnotationRefName] != tags[i] || d.Annotations["io.containerd.image.name"] != img.RefName {
			t.Errorf("index.json manifest %d: %+v, want %s, ref.name %q and io.containerd.image.name %q", i, d, img.Manifest.Digest, tags[i], img.RefName)
		}
	}

	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	// The docker view lists the two children, not the base whose layers
	// both of them start with.
	leaves := fx.images[1:]
	if len(docker) != len(leaves) {
		t.Fatalf("manifest.json lists %d images, want the %d that are no base: %s", len(docker), len(leaves), files["manifest.json"])
	}
	for i, e := range docker {
		img := leaves[i]
		if e.Config != "blobs/sha256/"+img.Config.Digest.Encoded() || !slices.Equal(e.RepoTags, []string{img.RefName}) || len(e.Layers) != len(img.Layers) {
			t.Errorf("manifest.json image %d: %+v", i, e)
			continue
		}
		if _, ok := files[e.Config]; !ok {
			t.Errorf("manifest.json image %d: config %s not in the archive", i, e.Config)
		}
		for j, l := range e.Layers {
			if l != "blobs/sha256/"+img.Layers[j].Digest.Encoded() {
				t.Errorf("manifest.json image %d layer %d: %s", i, j, l)
			}
			if _, ok := files[l]; !ok {
				t.Errorf("manifest.json image %d: layer %s not in the archive", i, l)
			}
		}
	}
}

// TestReadParentsFirst: an archive listing children before their base
// reads parents first.
func TestReadParentsFirst(t *testing.T) {
	fx := newFixture(t)
	base, c1, c2 := fx.images[0], fx.images[1], fx.images[2]
	fx.images = []Image{c1, c2, base}
	a := fx.archive(t)
	c, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), newStore(t), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	assertImages(t, c.Images, []Image{base, c1, c2})
}

// TestReadNonDistributable: a non-distributable layer may be missing from
// an archive; Write leaves it out when the opener does not have it.
func TestReadNonDistributable(t *testing.T) {
	fx := &fixture{blobs: map[digest.Digest][]byte{}}
	foreign := fx.blob(layerBytes(t, 9, 500), mediaTypeDockerForeignBlob)
	foreign.URLs = []string{"https://example.invalid/layer"}
	delete(fx.blobs, foreign.Digest)
	l := fx.blob(layerBytes(t, 10, 600), ocispec.MediaTypeImageLayerGzip)
	fx.addImage(t, "windowsservercore:10.0.14393.0", nil, []ocispec.Descriptor{foreign, l}, 0)
	a := fx.archive(t)
	for _, e := range untar(t, a) {
		if e.hdr.Name == blobPath(foreign.Digest) {
			t.Fatal("the missing foreign layer is in the archive")
		}
	}
	cs := newStore(t)
	c, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), cs, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	assertImages(t, c.Images, fx.images)
	if _, err := cs.Info(context.Background(), foreign.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("foreign layer: %v, want not found", err)
	}
}

// TestSignaturesRoundTrip writes an image with its cosign signature
// manifest: index.json lists it under the cosign tag, and Read attaches it
// to the image with its payloads; a signature manifest of no image of the
// archive is refused.
func TestSignaturesRoundTrip(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	iis := &fx.images[1]
	payload := fx.blob([]byte(`{"critical":{"type":"cosign container image signature"}}`), "application/vnd.dev.cosign.simplesigning.v1+json")
	config := fx.blob([]byte(`{"rootfs":{"type":"layers"}}`), ocispec.MediaTypeImageConfig)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: []ocispec.Descriptor{payload}}
	m.SchemaVersion = 2
	sm, _ := json.Marshal(m)
	iis.Signatures = &Signatures{Manifest: fx.blob(sm, ocispec.MediaTypeImageManifest), Config: config, Layers: []ocispec.Descriptor{payload}}

	a := fx.archive(t)
	var idx ocispec.Index
	for _, e := range untar(t, a) {
		if e.hdr.Name == "index.json" {
			json.Unmarshal(e.data, &idx)
		}
	}
	last := idx.Manifests[len(idx.Manifests)-1]
	if len(idx.Manifests) != 4 || last.Annotations[ocispec.AnnotationRefName] != find.SignatureTag(iis.Manifest.Digest.String()) || last.Digest != iis.Signatures.Manifest.Digest {
		t.Fatalf("index.json: %+v", idx.Manifests)
	}
	c, err := Read(ctx, bytes.NewReader(a), int64(len(a)), newStore(t), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Images) != 3 {
		t.Fatalf("%d images, want the 3 without the signatures", len(c.Images))
	}
	var got *Signatures
	for _, img := range c.Images {
		if img.Manifest.Digest == iis.Manifest.Digest {
			got = img.Signatures
		} else if img.Signatures != nil {
			t.Fatalf("image %s got signatures", img.RefName)
		}
	}
	if got == nil || got.Manifest.Digest != iis.Signatures.Manifest.Digest || len(got.Layers) != 1 ||
		!bytes.Equal(c.Payloads[payload.Digest], fx.blobs[payload.Digest]) {
		t.Fatalf("signatures %+v, payloads %v", got, c.Payloads)
	}

	// Without the image it signs, the signature manifest is refused.
	fx.images = fx.images[:1]
	fx.images[0].Signatures = iis.Signatures
	b := fx.archive(t)
	es := untar(t, b)
	for i := range es {
		if es[i].hdr.Name == "index.json" {
			es[i].data = bytes.Replace(es[i].data, []byte(find.SignatureTag(fx.images[0].Manifest.Digest.String())), []byte(find.SignatureTag(iis.Manifest.Digest.String())), 1)
		}
	}
	b = retar(t, es)
	if _, err := Read(ctx, bytes.NewReader(b), int64(len(b)), newStore(t), testLimits); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("signatures of an image not in the archive: %v", err)
	}
}
