package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// archiveWriter is a third-party tool writing the image ref (a reference
// of catalogd, tagged tag) to an archive under dir; it returns the path
// that cimage install --path takes, a tar file or a layout directory.
type archiveWriter struct {
	name string
	tool string
	// keepsManifest: the archive holds catalogd's manifest as it is (an
	// OCI layout), so an image installs with its digest, annotations and
	// parent. A docker archive holds no manifest: the image gets one that
	// providerd makes, named by its RepoTags, without a parent.
	keepsManifest bool
	write         func(t *testing.T, c *client, ref, repo, tag, dir string) string
}

var archiveWriters = []archiveWriter{
	{"skopeo oci-archive", "skopeo", true, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "oci-archive.tar")
		c.run(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci-archive:"+out+":"+tag)
		return out
	}},
	{"skopeo oci directory", "skopeo", true, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "oci")
		c.run(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+out+":"+tag)
		return out
	}},
	{"skopeo docker-archive", "skopeo", false, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "docker-archive.tar")
		c.run(t, "copy", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+out+":"+repo+":"+tag)
		return out
	}},
	{"crane pull", "crane", false, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "crane.tar")
		c.run(t, "pull", "--insecure", ref, out)
		return out
	}},
	{"crane pull --format oci", "crane", true, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "crane-layout")
		c.run(t, "pull", "--insecure", "--format", "oci", ref, out)
		return out
	}},
	{"oras copy --to-oci-layout", "oras", true, func(t *testing.T, c *client, ref, repo, tag, dir string) string {
		out := filepath.Join(dir, "oras-layout")
		c.run(t, "copy", "--from-plain-http", ref, "--to-oci-layout", out+":"+tag)
		return out
	}},
}

// TestArchivesOfTheFieldInstall is the matrix of the archives that skopeo,
// crane and oras write, as tar files and as layout directories: each
// installs with cimage install --path on a host that reaches no source,
// the base first, then the child on it.
func TestArchivesOfTheFieldInstall(t *testing.T) {
	c := startCatalogd(t, true)
	base := mustFindOne(t, c, "WindowsServerCore", "10.0.14393.0")
	child := mustFindOne(t, c, "microsoft/iis", "1.0.0.0")
	for _, w := range archiveWriters {
		t.Run(w.name, func(t *testing.T) {
			cl := newClient(t, w.tool)
			p := startProviderd(t, "http://127.0.0.1:1", "")
			baseDir, childDir := t.TempDir(), t.TempDir()
			basePath := w.write(t, cl, c.Addr+"/windowsservercore:10.0.14393.0", "windowsservercore", "10.0.14393.0", baseDir)
			childPath := w.write(t, cl, c.Addr+"/microsoft/iis:1.0.0.0", "microsoft/iis", "1.0.0.0", childDir)

			out := mustCimage(t, p, "install", "--path", basePath)
			if !strings.Contains(strings.ToLower(out), "windowsservercore") || !strings.Contains(out, "10.0.14393.0") {
				t.Fatalf("cimage install --path %s:\n%s", basePath, out)
			}
			mustCimage(t, p, "install", "--path", childPath)
			imgs := map[string]api.Image{}
			for _, img := range p.images(t) {
				imgs[strings.ToLower(img.Name)] = img
			}
			b, ok := imgs["windowsservercore"]
			ch, ok2 := imgs["microsoft/iis"]
			if !ok || !ok2 || len(imgs) != 2 {
				t.Fatalf("images after both installs: %+v", imgs)
			}
			if b.Version != "10.0.14393.0" || ch.Version != "1.0.0.0" || !b.IsOSImage || b.Source != "file" || ch.Source != "file" {
				t.Errorf("images: %+v and %+v", b, ch)
			}
			if w.keepsManifest {
				// The manifests are catalogd's: the same digests, the
				// title and publisher of the annotations, the parent.
				if b.Digest != base.Digest || ch.Digest != child.Digest || b.Name != "WindowsServerCore" || b.Publisher != "CN=Microsoft" {
					t.Errorf("images %+v and %+v, want catalogd's %s and %s", b, ch, base.Digest, child.Digest)
				}
				if ch.IsOSImage || ch.ParentImage == nil || ch.ParentImage.Digest != base.Digest {
					t.Errorf("microsoft/iis: parent %+v, want WindowsServerCore %s", ch.ParentImage, base.Digest)
				}
			} else if ch.ParentImage != nil {
				t.Errorf("microsoft/iis from a docker archive: parent %+v", ch.ParentImage)
			}
			// Every layer the tool wrote was verified and is in the store.
			for _, img := range []api.Image{b, ch} {
				for _, d := range layerDigests(t, p, img) {
					if _, err := os.Stat(filepath.Join(p.Root, "content", "blobs", "sha256", d.Encoded())); err != nil {
						t.Errorf("%s: layer %s not in the store: %v", img.Name, d, err)
					}
				}
			}
		})
	}
}

// layerDigests reads the layers of an installed image from its manifest in
// providerd's store.
func layerDigests(t *testing.T, p *providerd, img api.Image) []digest.Digest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Root, "content", "blobs", "sha256", digest.Digest(img.Digest).Encoded()))
	if err != nil {
		t.Fatalf("manifest of %s: %v", img.Name, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// pushRecompressed pushes to repo:tag a copy of catalogd's image
// from:fromTag whose layers are compressed again with zstd: the same
// config, so the same diff_ids, the manifest's annotations (base.name and
// base.digest link it to its parent) with the title title. It returns the
// manifest pushed and its digest.
func pushRecompressed(t *testing.T, c *catalogd, from, fromTag, repo, tag, title string) (ocispec.Manifest, digest.Digest) {
	t.Helper()
	hc := &http.Client{}
	get := func(d digest.Digest) []byte {
		resp, err := hc.Get(c.URL("/v2/" + from + "/blobs/" + d.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("blob %s: %d %v", d, resp.StatusCode, err)
		}
		return b
	}
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := c.send(hc, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", b, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
		return d
	}
	zw, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	m := manifestOf(t, c, from, fromTag)
	put(get(m.Config.Digest))
	for i, l := range m.Layers {
		plain := get(l.Digest)
		if l.MediaType == ocispec.MediaTypeImageLayerGzip {
			zr, err := gzip.NewReader(bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		z := zw.EncodeAll(plain, nil)
		m.Layers[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerZstd, Digest: put(z), Size: int64(len(z))}
	}
	m.Annotations[find.AnnotationTitle] = title
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(hc, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, ocispec.MediaTypeImageManifest, mb, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	return m, digest.FromBytes(mb)
}

// savedArchive is what a tar that providerd saved holds.
type savedArchive struct {
	index  ocispec.Index
	docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
}

func readSaved(t *testing.T, path string) savedArchive {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s savedArchive
	tr := tar.NewReader(f)
	for range 100000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch {
		case h.Name == "index.json":
			err = json.NewDecoder(tr).Decode(&s.index)
		case h.Name == "manifest.json":
			err = json.NewDecoder(tr).Decode(&s.docker)
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", path, h.Name, err)
		}
	}
	return s
}

// untarTo extracts the tar at path into dir, as `tar -x` does: the saved
// archive's files, regular files and directories only.
func untarTo(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for range 100000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("entry %s escapes", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
}

// layoutDigest is the digest of the image that index.json of the layout
// dir names with ref.name tag.
func layoutDigest(t *testing.T, dir, tag string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, d := range idx.Manifests {
		if d.Annotations[ocispec.AnnotationRefName] == tag {
			return d.Digest.String()
		}
	}
	t.Fatalf("%s: no manifest tagged %s: %s", dir, tag, b)
	return ""
}

// TestSavedArchivesReadByTools saves, with cimage save, microsoft/iis and a
// child of WindowsServerCore whose layers were compressed again with zstd,
// its parent linked by annotation. Each archive names its images as docker
// 25 does, lists the child alone in manifest.json, and is read by crane
// push, skopeo docker-archive: and oci-archive:, and oras copy
// --from-oci-layout dir:TAG; it installs again on a host that has nothing.
func TestSavedArchivesReadByTools(t *testing.T) {
	c := startCatalogd(t, true)
	zm, zdigest := pushRecompressed(t, c, "microsoft/iis", "1.0.0.0", "zstd/iis", "1.0.0.0", "IISZstd")
	parent := mustFindOne(t, c, "WindowsServerCore", "10.0.14393.0")
	if zm.Annotations[find.AnnotationBaseDigest] != parent.Digest {
		t.Fatalf("the zstd child names base %s, want %s", zm.Annotations[find.AnnotationBaseDigest], parent.Digest)
	}
	p := startProviderd(t, c.URL(""), "")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, repo, file string
		digest           string
		layers           []ocispec.Descriptor
	}{
		{"gzip child", "microsoft/iis", "microsoft_iis-1-0-0-0.tar", mustFindOne(t, c, "microsoft/iis", "1.0.0.0").Digest, manifestOf(t, c, "microsoft/iis", "1.0.0.0").Layers},
		{"zstd child", "zstd/iis", "IISZstd-1-0-0-0.tar", zdigest.String(), zm.Layers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustCimage(t, p, "install", tc.repo)
			mustCimage(t, p, "save", tc.repo, "--path", dir)
			file := filepath.Join(dir, tc.file)
			s := readSaved(t, file)

			// index.json: the parent, then the child; ref.name the tag,
			// io.containerd.image.name the name with the registry's host.
			wantNames := [][2]string{{"10.0.14393.0", c.Addr + "/windowsservercore:10.0.14393.0"}, {"1.0.0.0", c.Addr + "/" + tc.repo + ":1.0.0.0"}}
			if len(s.index.Manifests) != 2 {
				t.Fatalf("index.json lists %d images, want the child and its parent", len(s.index.Manifests))
			}
			for i, d := range s.index.Manifests {
				if got := [2]string{d.Annotations[ocispec.AnnotationRefName], d.Annotations["io.containerd.image.name"]}; got != wantNames[i] {
					t.Errorf("index.json image %d: ref.name and io.containerd.image.name %q, want %q", i, got, wantNames[i])
				}
			}
			if s.index.Manifests[1].Digest.String() != tc.digest {
				t.Errorf("index.json names %s, want %s", s.index.Manifests[1].Digest, tc.digest)
			}
			// manifest.json: the child alone, its layers those of its
			// manifest (for the zstd child, none of them its parent's).
			if len(s.docker) != 1 || !slices.Equal(s.docker[0].RepoTags, []string{c.Addr + "/" + tc.repo + ":1.0.0.0"}) {
				t.Fatalf("manifest.json: %+v, want the child alone", s.docker)
			}
			for i, l := range tc.layers {
				if s.docker[0].Layers[i] != "blobs/sha256/"+l.Digest.Encoded() {
					t.Errorf("manifest.json layer %d: %s, want %s", i, s.docker[0].Layers[i], l.Digest)
				}
			}

			t.Run("crane push", func(t *testing.T) {
				crane := newClient(t, "crane")
				crane.run(t, "auth", "login", c.Addr, "-u", c.User, "-p", c.Password)
				dst := c.Addr + "/pushed/" + strings.ReplaceAll(tc.repo, "/", "-") + ":1.0.0.0"
				crane.run(t, "push", "--insecure", file, dst)
				var m ocispec.Manifest
				if err := json.Unmarshal([]byte(crane.run(t, "manifest", "--insecure", dst)), &m); err != nil {
					t.Fatal(err)
				}
				if len(m.Layers) != len(tc.layers) {
					t.Fatalf("pushed %d layers, want %d", len(m.Layers), len(tc.layers))
				}
				for i, l := range m.Layers {
					if l.Digest != tc.layers[i].Digest {
						t.Errorf("pushed layer %d is %s, want %s", i, l.Digest, tc.layers[i].Digest)
					}
				}
			})
			t.Run("skopeo docker-archive", func(t *testing.T) {
				skopeo := newClient(t, "skopeo")
				out := filepath.Join(t.TempDir(), "layout")
				skopeo.run(t, "copy", "docker-archive:"+file, "oci:"+out+":iis")
				verifyLayout(t, out)
			})
			t.Run("skopeo oci-archive", func(t *testing.T) {
				skopeo := newClient(t, "skopeo")
				out := filepath.Join(t.TempDir(), "layout")
				skopeo.run(t, "copy", "oci-archive:"+file+":1.0.0.0", "oci:"+out+":iis")
				if got := verifyLayout(t, out); got != tc.digest {
					t.Errorf("skopeo copied %s, want %s", got, tc.digest)
				}
			})
			t.Run("oras copy --from-oci-layout", func(t *testing.T) {
				oras := newClient(t, "oras")
				layout := filepath.Join(t.TempDir(), "saved")
				untarTo(t, file, layout)
				out := filepath.Join(t.TempDir(), "copied")
				oras.run(t, "copy", "--from-oci-layout", layout+":1.0.0.0", "--to-oci-layout", out+":1.0.0.0")
				if got := layoutDigest(t, out, "1.0.0.0"); got != tc.digest {
					t.Errorf("oras copied %s, want %s", got, tc.digest)
				}
				// oras reads the tar as it is, too.
				fromTar := filepath.Join(t.TempDir(), "copied")
				oras.run(t, "copy", "--from-oci-layout", file+":1.0.0.0", "--to-oci-layout", fromTar+":1.0.0.0")
				if got := layoutDigest(t, fromTar, "1.0.0.0"); got != tc.digest {
					t.Errorf("oras copied %s from the tar, want %s", got, tc.digest)
				}
			})
			t.Run("install --path", func(t *testing.T) {
				q := startProviderd(t, "http://127.0.0.1:1", "")
				mustCimage(t, q, "install", "--path", file)
				var got []string
				for _, img := range q.images(t) {
					parent := ""
					if img.ParentImage != nil {
						parent = img.ParentImage.Digest
					}
					got = append(got, fmt.Sprintf("%s %s", img.Digest, parent))
				}
				slices.Sort(got)
				want := []string{tc.digest + " " + parent.Digest, parent.Digest + " "}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("images after install --path: %v, want %v", got, want)
				}
			})
		})
	}
}
