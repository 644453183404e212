package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
)

// deepTree writes under dir a file whose path below dir is n bytes long,
// in components of at most 255 bytes, and returns that path.
func deepTree(t *testing.T, dir string, n int) string {
	t.Helper()
	var parts []string
	for left := n; left > 0; {
		c := min(255, left)
		if left-c == 1 {
			c-- // no component of 0 bytes after the separator
		}
		parts = append(parts, strings.Repeat("d", c))
		left -= c
		if left > 0 {
			left-- // the separator
		}
	}
	rel := filepath.Join(parts...)
	if len(rel) != n {
		t.Fatalf("deep path of %d bytes, want %d", len(rel), n)
	}
	full := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte("deep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestHardeningCopyPathLimits copies into a container the longest path
// that its directory on the daemon's host can hold, and commits it; one
// byte more is refused with a short message.
func TestHardeningCopyPathLimits(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	var ctr api.Container
	if code, body := p.call(t, http.MethodPost, "/v1/containers", api.ContainerCreateRequest{Image: "NanoServer", Name: "deep"}, &ctr); code/100 != 2 {
		t.Fatalf("create: %d %s", code, body)
	}
	// The container's files are <root>/containers/<id>/rootfs; the copy of
	// directory "s" puts them under /s.
	prefix := len(filepath.Join(p.Root, "containers", ctr.ID, "rootfs", "s"))
	longest := 4095 - prefix - 1

	ok := filepath.Join(t.TempDir(), "s")
	deepTree(t, ok, longest)
	mustCimage(t, p, "container", "cp", ok, "deep:/")
	mustCimage(t, p, "new", "--container", "deep", "--publisher", "Demo", "--name", "Deep", "--version", "1.0")

	over := filepath.Join(t.TempDir(), "s")
	deepTree(t, over, longest+1)
	out, code := cimage(t, p, "container", "cp", over, "deep:/")
	if code == 0 || !strings.Contains(out, "must stay under 4096") {
		t.Fatalf("copy of a path one byte too long: exit %d\n%s", code, out)
	}
	if len(out) > 2000 {
		t.Errorf("%d bytes of output: the name is not cut", len(out))
	}
}

// testImageArchive is an archive of one base image whose layer is data of
// media type mt, with the manifest annotations ann.
func testImageArchive(t *testing.T, data []byte, mt string, ann map[string]string) []byte {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	blob := func(b []byte, mt string) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	layer := blob(data, mt)
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}}})
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: blob(cfg, ocispec.MediaTypeImageConfig), Layers: []ocispec.Descriptor{layer}, Annotations: ann,
	})
	var mm ocispec.Manifest
	json.Unmarshal(m, &mm)
	img := archive.Image{RefName: "evil:1.0.0.0", Manifest: blob(m, ocispec.MediaTypeImageManifest), Config: mm.Config, Layers: mm.Layers}
	var buf bytes.Buffer
	err := archive.Write(context.Background(), &buf, []archive.Image{img}, func(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[d.Digest])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHardeningLoadRefusals: a gzip bomb, a layer of arbitrary bytes and a
// title with terminal escapes are refused, and leave no image, no blob and
// no spool file.
func TestHardeningLoadRefusals(t *testing.T) {
	c := startCatalogd(t, false)
	p := startProviderd(t, c.URL(""), "")
	var zeros bytes.Buffer
	zw := gzip.NewWriter(&zeros)
	zw.Write(make([]byte, 64<<20))
	zw.Close()
	var layer bytes.Buffer
	lw := gzip.NewWriter(&layer)
	lw.Write(make([]byte, 1024)) // an empty tar
	lw.Close()
	cases := []struct {
		name string
		data []byte
		text string
	}{
		{"gzip bomb", zeros.Bytes(), "not a tar archive"},
		{"passwd as a layer", testImageArchive(t, []byte("root:x:0:0:root:/root:/bin/bash\n"), ocispec.MediaTypeImageLayer,
			map[string]string{find.AnnotationTitle: "evil", find.AnnotationVersion: "1.0.0.0"}), "not a tar"},
		{"escapes in the title", testImageArchive(t, layer.Bytes(), ocispec.MediaTypeImageLayerGzip,
			map[string]string{find.AnnotationTitle: "evil\x1b[2J\r\n", find.AnnotationVersion: "1.0.0.0"}), "control character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "archive.tar")
			if err := os.WriteFile(file, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := cimage(t, p, "install", "--path", file)
			if code == 0 || !strings.Contains(out, tc.text) {
				t.Fatalf("install --path of a %s: exit %d, want a refusal saying %q\n%s", tc.name, code, tc.text, out)
			}
			if imgs := p.images(t); len(imgs) != 0 {
				t.Errorf("images after a refused archive: %s", describe(imgs))
			}
			if blobs := blobFiles(t, p.Root); len(blobs) != 0 {
				t.Errorf("%d blobs after a refused archive", len(blobs))
			}
			if spool, _ := os.ReadDir(filepath.Join(p.Root, "tmp")); len(spool) != 0 {
				t.Errorf("spool files left: %v", spool)
			}
			if strings.Contains(mustCimage(t, p, "images"), "\x1b") {
				t.Error("cimage images prints an escape")
			}
		})
	}
}
