package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/store/content"
)

// plainLayer is an uncompressed layer tar holding one file of n random
// bytes made from seed.
func plainLayer(t testing.TB, seed uint64, n int) []byte {
	t.Helper()
	return retar(t, []tarEntry{fileEntry(fmt.Sprintf("file%d", seed), randomBytes(seed, n))})
}

func zstdCompressed(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// dockerFixture is two images, a base and a child on it, as the field's
// tools save them: layers as uncompressed tars, configs with their real
// diff_ids.
type dockerFixture struct {
	layers [][]byte // uncompressed tars
	images []dockerFixtureImage
}

type dockerFixtureImage struct {
	tag    string // RepoTags[0]
	layers []int  // indexes into dockerFixture.layers
	config []byte
}

func newDockerFixture(t testing.TB, tags ...string) *dockerFixture {
	t.Helper()
	fx := &dockerFixture{layers: [][]byte{plainLayer(t, 21, 700), plainLayer(t, 22, 300), plainLayer(t, 23, 500)}}
	for i, layers := range [][]int{{0, 1}, {0, 1, 2}}[:len(tags)] {
		cfg := ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}
		for _, l := range layers {
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(fx.layers[l]))
		}
		cb, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fx.images = append(fx.images, dockerFixtureImage{tag: tags[i], layers: layers, config: cb})
	}
	return fx
}

func (fx *dockerFixture) diffID(l int) digest.Digest { return digest.FromBytes(fx.layers[l]) }

func jsonEntry(t testing.TB, name string, v any) tarEntry {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return fileEntry(name, b)
}

func symlinkEntry(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}}
}

func tarDirEntry(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

// v1ID is a legacy layer id, made from s.
func v1ID(s string) string { return digest.FromString(s).Encoded() }

// skopeoArchive is the fixture as `skopeo copy … docker-archive:` writes
// it: <hex>.tar layers and <hex>.json configs at the root, and a legacy
// directory per layer whose layer is a symbolic link to them.
func (fx *dockerFixture) skopeoArchive(t testing.TB) []byte {
	t.Helper()
	var es []tarEntry
	var manifest []dockerManifestEntry
	written := map[int]bool{}
	for i, img := range fx.images {
		e := dockerManifestEntry{Config: digest.FromBytes(img.config).Encoded() + ".json", RepoTags: []string{img.tag}}
		for j, l := range img.layers {
			hexName := fx.diffID(l).Encoded() + ".tar"
			if !written[l] {
				written[l] = true
				es = append(es, fileEntry(hexName, fx.layers[l]))
			}
			id := v1ID(fmt.Sprint(i, j))
			es = append(es, symlinkEntry(id+"/layer", "../"+hexName), fileEntry(id+"/VERSION", []byte("1.0")), fileEntry(id+"/json", []byte("{}")))
			e.Layers = append(e.Layers, hexName)
		}
		es = append(es, fileEntry(e.Config, img.config))
		manifest = append(manifest, e)
	}
	es = append(es, jsonEntry(t, "manifest.json", manifest), fileEntry("repositories", []byte("{}")))
	return retar(t, es)
}

// legacyArchive is the fixture as docker save before 25 writes it: a
// directory per layer holding layer.tar, a layer that an earlier image
// already saved being a symbolic link to it, and <hex>.json configs.
func (fx *dockerFixture) legacyArchive(t testing.TB) []byte {
	t.Helper()
	var es []tarEntry
	var manifest []dockerManifestEntry
	saved := map[int]string{}
	for i, img := range fx.images {
		e := dockerManifestEntry{Config: digest.FromBytes(img.config).Encoded() + ".json", RepoTags: []string{img.tag}}
		for j, l := range img.layers {
			id := v1ID(fmt.Sprint("legacy", i, j))
			es = append(es, tarDirEntry(id+"/"), fileEntry(id+"/VERSION", []byte("1.0")), fileEntry(id+"/json", []byte("{}")))
			if first, ok := saved[l]; ok {
				es = append(es, symlinkEntry(id+"/layer.tar", "../"+first))
			} else {
				saved[l] = id + "/layer.tar"
				es = append(es, fileEntry(id+"/layer.tar", fx.layers[l]))
			}
			e.Layers = append(e.Layers, id+"/layer.tar")
		}
		es = append(es, fileEntry(e.Config, img.config))
		manifest = append(manifest, e)
	}
	es = append(es, jsonEntry(t, "manifest.json", manifest), fileEntry("repositories", []byte("{}")))
	return retar(t, es)
}

// craneLayers are the layers of the fixture as crane's tarball holds them:
// gzip, and the child's own layer zstd.
func (fx *dockerFixture) craneLayers(t testing.TB) [][]byte {
	out := make([][]byte, len(fx.layers))
	for l, b := range fx.layers {
		if l == 2 {
			out[l] = zstdCompressed(t, b)
		} else {
			out[l] = gzipped(t, b)
		}
	}
	return out
}

// craneArchive is the fixture as crane pull writes a tarball: sha256:<hex>
// configs and <hex>.tar.gz (or .tar.zst) layers named by their compressed
// digests.
func (fx *dockerFixture) craneArchive(t testing.TB) []byte {
	t.Helper()
	layers := fx.craneLayers(t)
	var es []tarEntry
	var manifest []dockerManifestEntry
	written := map[int]bool{}
	for _, img := range fx.images {
		e := dockerManifestEntry{Config: digest.FromBytes(img.config).String(), RepoTags: []string{img.tag}}
		es = append(es, fileEntry(e.Config, img.config))
		for _, l := range img.layers {
			ext := ".tar.gz"
			if l == 2 {
				ext = ".tar.zst"
			}
			name := digest.FromBytes(layers[l]).Encoded() + ext
			if !written[l] {
				written[l] = true
				es = append(es, fileEntry(name, layers[l]))
			}
			e.Layers = append(e.Layers, name)
		}
		manifest = append(manifest, e)
	}
	es = append(es, jsonEntry(t, "manifest.json", manifest))
	return retar(t, es)
}

// docker25Archive is the fixture as docker save 25 and later writes it: an
// OCI layout with uncompressed layers, index.json naming each image by
// io.containerd.image.name and its tag, and manifest.json and repositories
// beside it.
func (fx *dockerFixture) docker25Archive(t testing.TB) []byte {
	t.Helper()
	blobs := map[string][]byte{}
	put := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[blobPath(d)] = b
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	var manifest []dockerManifestEntry
	for _, img := range fx.images {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: put(img.config)}
		m.SchemaVersion = 2
		m.Config.MediaType = ocispec.MediaTypeImageConfig
		e := dockerManifestEntry{Config: blobPath(m.Config.Digest), RepoTags: []string{img.tag}}
		for _, l := range img.layers {
			d := put(fx.layers[l])
			d.MediaType = ocispec.MediaTypeImageLayer
			m.Layers = append(m.Layers, d)
			e.Layers = append(e.Layers, blobPath(d.Digest))
		}
		mb, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		md := put(mb)
		md.MediaType = ocispec.MediaTypeImageManifest
		n, _ := ParseName(img.tag)
		md.Annotations = map[string]string{
			AnnotationContainerdName:  "docker.io/library/" + n.Repository + ":" + n.Tag,
			ocispec.AnnotationRefName: n.Tag,
		}
		idx.Manifests = append(idx.Manifests, md)
		manifest = append(manifest, e)
	}
	es := []tarEntry{tarDirEntry("blobs/"), tarDirEntry("blobs/sha256/")}
	names := make([]string, 0, len(blobs))
	for name := range blobs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		es = append(es, fileEntry(name, blobs[name]))
	}
	es = append(es, jsonEntry(t, "index.json", idx), jsonEntry(t, "manifest.json", manifest),
		fileEntry("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)), fileEntry("repositories", []byte("{}")))
	return retar(t, es)
}

// readStore reads blob d from cs.
func readStore(t *testing.T, cs content.Store, d digest.Digest) []byte {
	t.Helper()
	ra, err := cs.ReaderAt(context.Background(), d)
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	defer ra.Close()
	b, err := io.ReadAll(content.NewSectionReader(ra))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadDockerArchives reads the archives of docker save (before and
// after 25), skopeo docker-archive: and crane's tarball: each image is
// there, parents first, with its config, its layers as the archive holds
// them, and a manifest; a child of a docker archive names its base.
func TestReadDockerArchives(t *testing.T) {
	tags := []string{"docker.io/library/nanoserver:10.0.10586.0", "127.0.0.1:5000/microsoft/iis:1.0.0.0"}
	fx := newDockerFixture(t, tags...)
	crane := fx.craneLayers(t)
	plain := func(l int) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: fx.diffID(l), Size: int64(len(fx.layers[l]))}
	}
	compressed := func(l int) ocispec.Descriptor {
		mt := ocispec.MediaTypeImageLayerGzip
		if l == 2 {
			mt = ocispec.MediaTypeImageLayerZstd
		}
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(crane[l]), Size: int64(len(crane[l]))}
	}
	for _, tc := range []struct {
		name     string
		archive  []byte
		layer    func(int) ocispec.Descriptor
		refNames []string
		// made: the archive has no OCI index, and Read makes the manifests.
		made bool
	}{
		{"skopeo docker-archive", fx.skopeoArchive(t), plain, tags, true},
		{"docker save before 25", fx.legacyArchive(t), plain, tags, true},
		{"crane tarball", fx.craneArchive(t), compressed, tags, true},
		{"docker save 25", fx.docker25Archive(t), plain, []string{"docker.io/library/nanoserver:10.0.10586.0", "docker.io/library/microsoft/iis:1.0.0.0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cs := newStore(t)
			c, err := Read(ctx, bytes.NewReader(tc.archive), int64(len(tc.archive)), cs, Limits{})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(c.Images) != 2 {
				t.Fatalf("%d images, want 2", len(c.Images))
			}
			for i, img := range c.Images {
				want := fx.images[i]
				if img.RefName != tc.refNames[i] {
					t.Errorf("image %d: RefName %q, want %q", i, img.RefName, tc.refNames[i])
				}
				if img.Config.Digest != digest.FromBytes(want.config) || !bytes.Equal(c.Configs[img.Config.Digest], want.config) {
					t.Errorf("image %d: config %s", i, img.Config.Digest)
				}
				if len(img.Layers) != len(want.layers) {
					t.Fatalf("image %d: %d layers, want %d", i, len(img.Layers), len(want.layers))
				}
				for j, l := range want.layers {
					if w := tc.layer(l); !descEqual(img.Layers[j], w) {
						t.Errorf("image %d layer %d: %+v, want %+v", i, j, img.Layers[j], w)
					}
				}
				for _, d := range append([]ocispec.Descriptor{img.Manifest, img.Config}, img.Layers...) {
					if got := readStore(t, cs, d.Digest); digest.FromBytes(got) != d.Digest {
						t.Errorf("blob %s: stored bytes differ", d.Digest)
					}
				}
				var m ocispec.Manifest
				if err := json.Unmarshal(c.Manifests[img.Manifest.Digest], &m); err != nil {
					t.Fatal(err)
				}
				if m.Config.Digest != img.Config.Digest || len(m.Layers) != len(img.Layers) {
					t.Errorf("image %d: manifest %s lists another config or layer count", i, img.Manifest.Digest)
				}
				if !tc.made {
					continue
				}
				wantBase := map[string]string{}
				if i == 1 {
					wantBase = map[string]string{
						ocispec.AnnotationBaseImageDigest: c.Images[0].Manifest.Digest.String(),
						ocispec.AnnotationBaseImageName:   tags[0],
					}
				}
				if fmt.Sprint(m.Annotations) != fmt.Sprint(wantBase) {
					t.Errorf("image %d: made manifest's annotations %v, want %v", i, m.Annotations, wantBase)
				}
			}
			// The manifests made are the same on every read.
			again, err := Read(ctx, bytes.NewReader(tc.archive), int64(len(tc.archive)), newStore(t), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range again.Images {
				if again.Images[i].Manifest.Digest != c.Images[i].Manifest.Digest {
					t.Errorf("image %d: manifest %s, then %s", i, c.Images[i].Manifest.Digest, again.Images[i].Manifest.Digest)
				}
			}
		})
	}
}

// dockerCases are docker archives without an OCI index that Read refuses.
// They hold one image, to fit testLimits.
func dockerCases(t testing.TB) []maliciousCase {
	fx := newDockerFixture(t, "nanoserver:10.0.10586.0")
	valid := untar(t, fx.skopeoArchive(t))
	layer := fx.diffID(0).Encoded() + ".tar"
	link := v1ID(fmt.Sprint(0, 0)) + "/layer"
	var cases []maliciousCase
	add := func(name, want string, es []tarEntry) {
		cases = append(cases, maliciousCase{name: name, want: want, data: retar(t, es)})
	}
	withLink := func(target string) []tarEntry {
		return edit(valid, link, func(e tarEntry) *tarEntry { e.hdr.Linkname = target; return &e })
	}
	var m []dockerManifestEntry
	useLink := func(es []tarEntry) []tarEntry {
		m = nil
		return editJSON(t, es, "manifest.json", &m, func() { m[0].Layers[0] = link })
	}
	add("docker link that escapes", "escapes the archive", withLink("../../etc/passwd"))
	add("docker link to an absolute name", "relative name", withLink("/etc/passwd"))
	add("docker link outside a layer directory", "symlink", append(slices.Clone(valid), symlinkEntry(strings.Repeat("a", 64)+".tar", "/etc/passwd")))
	add("docker link to no file", "not a file of the archive", useLink(withLink("../"+strings.Repeat("b", 64)+".tar")))
	add("docker path that escapes", "not a name inside", editJSON(t, valid, "manifest.json", &m, func() { m[0].Layers[0] = "../" + layer }))
	add("docker layer missing", "is missing", drop(valid, layer))
	add("docker layer unlike its name", "bytes have digest", edit(valid, layer, func(e tarEntry) *tarEntry {
		e.data[len(e.data)/2] ^= 0xff
		return &e
	}))
	cfgName := digest.FromBytes(fx.images[0].config).Encoded() + ".json"
	add("docker config unlike its name", "its name says", edit(valid, cfgName, func(e tarEntry) *tarEntry {
		e.data = bytes.Replace(e.data, []byte("windows"), []byte("linux00"), 1)
		return &e
	}))
	add("docker config with more diff_ids", "diff_ids", editJSON(t, valid, "manifest.json", &m, func() { m[0].Layers = m[0].Layers[:1] }))
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\n")
	passwdName := digest.FromBytes(passwd).Encoded() + ".tar"
	add("docker layer that is no tar", "not a tar", append(editJSON(t, drop(valid, layer), "manifest.json", &m, func() { m[0].Layers[0] = passwdName }),
		fileEntry(passwdName, passwd)))
	add("docker file nothing refers to", "nothing refers to it", append(slices.Clone(valid), fileEntry(passwdName, passwd)))
	add("neither layout nor docker archive", "index.json and manifest.json are missing", drop(valid, "manifest.json"))
	// A legacy layer's digest is its diff_id: a layer.tar other than
	// the config says is refused.
	legacy := untar(t, fx.legacyArchive(t))
	lname := v1ID(fmt.Sprint("legacy", 0, 0)) + "/layer.tar"
	add("legacy layer unlike its diff_id", "bytes have digest", edit(legacy, lname, func(e tarEntry) *tarEntry {
		e.data = fx.layers[2]
		return &e
	}))
	return cases
}

// TestReadLayoutAlone: an OCI layout without manifest.json (skopeo
// oci-archive:, crane pull --format oci, oras) reads as one with it.
func TestReadLayoutAlone(t *testing.T) {
	fx := newFixture(t)
	a := retar(t, drop(untar(t, fx.archive(t)), "manifest.json"))
	c, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), newStore(t), testLimits)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	assertImages(t, c.Images, fx.images)
}

// TestReadNames: an image is named by io.containerd.image.name, else by a
// ref.name that is a name, else by manifest.json; a ref.name that is a tag
// alone gives the tag.
func TestReadNames(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		dropDocker  bool
		refName     string
		tag         string
	}{
		{"containerd name and tag", map[string]string{AnnotationContainerdName: "127.0.0.1:5000/nanoserver:10.0.10586.0", ocispec.AnnotationRefName: "10.0.10586.0"}, false, "127.0.0.1:5000/nanoserver:10.0.10586.0", ""},
		{"ref.name a name", map[string]string{ocispec.AnnotationRefName: "nanoserver:10.0.10586.0"}, true, "nanoserver:10.0.10586.0", ""},
		{"ref.name a tag, no manifest.json", map[string]string{ocispec.AnnotationRefName: "10.0.10586.0"}, true, "", "10.0.10586.0"},
		{"ref.name a tag, manifest.json", map[string]string{ocispec.AnnotationRefName: "10.0.10586.0"}, false, "nanoserver:10.0.10586.0", "10.0.10586.0"},
		{"no annotation", nil, false, "nanoserver:10.0.10586.0", ""},
		{"no annotation, no manifest.json", nil, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.images = fx.images[:1]
			es := untar(t, fx.archive(t))
			var idx ocispec.Index
			es = editJSON(t, es, "index.json", &idx, func() { idx.Manifests[0].Annotations = tc.annotations })
			if tc.dropDocker {
				es = drop(es, "manifest.json")
			}
			a := retar(t, es)
			c, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), newStore(t), testLimits)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if got := c.Images[0]; got.RefName != tc.refName || got.Tag != tc.tag {
				t.Errorf("RefName %q, Tag %q; want %q, %q", got.RefName, got.Tag, tc.refName, tc.tag)
			}
		})
	}
}

// TestWriteRecompressedChild saves a base with a gzip layer and a child
// whose layers were compressed again with zstd: the child's layer digests
// differ from its base's, its diff_ids start with the base's. The docker
// view lists the child alone, and the archive reads back whole.
func TestWriteRecompressedChild(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(fmt.Sprintf("base.digest annotation %v", named), func(t *testing.T) {
			fx := &fixture{blobs: map[digest.Digest][]byte{}}
			l1, l2 := plainLayer(t, 31, 800), plainLayer(t, 32, 400)
			gz := fx.blob(gzipped(t, l1), ocispec.MediaTypeImageLayerGzip)
			base := fx.addRealImage(t, "windowsservercore:10.0.14393.0", nil, []ocispec.Descriptor{gz}, [][]byte{l1})
			z1 := fx.blob(zstdCompressed(t, l1), ocispec.MediaTypeImageLayerZstd)
			z2 := fx.blob(zstdCompressed(t, l2), ocispec.MediaTypeImageLayerZstd)
			var b *Image
			if named {
				b = &base
			}
			child := fx.addRealImage(t, "127.0.0.1:5000/microsoft/iis:1.0.0.0", b, []ocispec.Descriptor{z1, z2}, [][]byte{l1, l2})
			a := fx.archive(t)
			var docker []dockerManifestEntry
			for _, e := range untar(t, a) {
				if e.hdr.Name == "manifest.json" {
					if err := json.Unmarshal(e.data, &docker); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(docker) != 1 || docker[0].Config != blobPath(child.Config.Digest) || !slices.Equal(docker[0].RepoTags, []string{child.RefName}) {
				t.Fatalf("manifest.json lists %+v, want the child alone", docker)
			}
			c, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), newStore(t), Limits{})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			assertImages(t, c.Images, fx.images)
		})
	}
}

// addRealImage is addImage with the config's diff_ids those of the
// uncompressed layers plain.
func (fx *fixture) addRealImage(t testing.TB, ref string, base *Image, layers []ocispec.Descriptor, plain [][]byte) Image {
	t.Helper()
	img := fx.addImage(t, ref, base, layers, 0)
	var cfg ocispec.Image
	if err := json.Unmarshal(fx.blobs[img.Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.RootFS.DiffIDs = nil
	for _, p := range plain {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(p))
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fx.blobs[img.Manifest.Digest], &m); err != nil {
		t.Fatal(err)
	}
	delete(fx.blobs, img.Config.Digest)
	delete(fx.blobs, img.Manifest.Digest)
	m.Config = fx.blob(cb, ocispec.MediaTypeImageConfig)
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.Config = m.Config
	ann := img.Manifest.Annotations
	img.Manifest = fx.blob(mb, ocispec.MediaTypeImageManifest)
	img.Manifest.Annotations = ann
	fx.images[len(fx.images)-1] = img
	return img
}
