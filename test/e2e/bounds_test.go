package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
)

// rawTarHeader is one 512-byte tar header in the GNU format, checksum
// included, for what archive/tar does not write: a GNU sparse file of
// realSize bytes, all holes, or a PAX header.
func rawTarHeader(name string, typ byte, size, realSize int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 0))
	b[156] = typ
	copy(b[257:265], "ustar  \x00")
	if typ == tar.TypeGNUSparse {
		copy(b[483:495], fmt.Sprintf("%011o\x00", realSize))
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxSparseTar is a tar of one file of 4 GiB that the PAX 0.1 sparse
// records describe as holes but for its last byte.
func paxSparseTar() []byte {
	rec := func(k, v string) string {
		r := " " + k + "=" + v + "\n"
		n := len(r) + len(strconv.Itoa(len(r)))
		if len(strconv.Itoa(n)) != len(strconv.Itoa(len(r))) {
			n++
		}
		return strconv.Itoa(n) + r
	}
	recs := rec("GNU.sparse.size", "4294967296") + rec("GNU.sparse.numblocks", "1") + rec("GNU.sparse.map", "4294967295,1")
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	out := rawTarHeader("PaxHeaders/holes", tar.TypeXHeader, int64(len(recs)), 0)
	out = append(out, pad([]byte(recs))...)
	out = append(out, rawTarHeader("holes", tar.TypeReg, 1, 0)...)
	out = append(out, pad([]byte("x"))...)
	return append(out, make([]byte, 1024)...)
}

// fileTar is a tar of regular files, given as name, body, name, body...
func fileTar(t *testing.T, files ...string) []byte {
	t.Helper()
	var entries []tarEntry
	for i := 0; i+1 < len(files); i += 2 {
		entries = append(entries, tarEntry{hdr: tar.Header{Name: files[i], ModTime: time.Unix(0, 0)}, body: files[i+1]})
	}
	return tarOf(t, entries...)
}

// checksums lists every file and directory under root but the bbolt
// database: relative path, mode and, for a file, its sha256.
func checksums(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "provider.db" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += " " + hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("checksum listing of %s: %v", root, err)
	}
	return out
}

// diskUsage is what `du` says the files under dir take on disk, in bytes.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-s", "--block-size=1", dir).Output()
	if err != nil {
		t.Fatalf("du %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatalf("du %s: %q", dir, out)
	}
	return n
}

// putArchive copies the tar body into container ref at dest over TCP with
// the token, and returns the status and the body of the answer.
func (p *providerd) putArchive(t *testing.T, ref, dest string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, p.URL("/v1/containers/"+ref+"/archive?path="+url.QueryEscape(dest)), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("Authorization", "Bearer "+p.Token(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHardeningCopyBounds: with a container limit of 1 MiB, a sparse entry
// of 4 GiB, a tar over the limit and a name component of 300 bytes are
// refused with 400 or 413, and each leaves the container's files as they
// were, on disk too.
func TestHardeningCopyBounds(t *testing.T) {
	c := startCatalogdSeeded(t, []string{"--base-layer-size", "64KiB", "--app-layer-size", "4KiB"})
	p := startProviderd(t, c.URL(""), "", "--container-max-size", "1MiB")
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	var ctr api.Container
	if code, body := p.call(t, http.MethodPost, "/v1/containers", api.ContainerCreateRequest{Image: "NanoServer", Name: "bounded"}, &ctr); code/100 != 2 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := p.putArchive(t, "bounded", "/", fileTar(t, "kept.txt", strings.Repeat("k", 100<<10))); code/100 != 2 {
		t.Fatalf("copy of 100 KiB: %d %s", code, body)
	}
	cdir := filepath.Join(p.Root, "containers", ctr.ID)
	before := checksums(t, cdir)
	usage := diskUsage(t, cdir)

	cases := []struct {
		name string
		tar  []byte
		code int
		text string
	}{
		{"GNU sparse entry of 4 GiB", append(rawTarHeader("holes", tar.TypeGNUSparse, 0, 4<<30), make([]byte, 1024)...), http.StatusBadRequest, "sparse"},
		{"PAX sparse entry of 4 GiB", paxSparseTar(), http.StatusBadRequest, "sparse"},
		{"tar over the container limit", fileTar(t, "a.bin", strings.Repeat("a", 600<<10), "b.bin", strings.Repeat("b", 600<<10)), http.StatusRequestEntityTooLarge, "1.0 MiB"},
		{"component of 300 bytes", fileTar(t, "ok.txt", "fine", strings.Repeat("n", 300)+"/x", "x"), http.StatusBadRequest, "300 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, body := p.putArchive(t, "bounded", "/", tc.tar)
			took := time.Since(start)
			if code != tc.code || !strings.Contains(body, tc.text) {
				t.Fatalf("copy: %d %s, want %d saying %q", code, body, tc.code, tc.text)
			}
			if len(body) > 1000 {
				t.Errorf("answer of %d bytes: the name is not cut", len(body))
			}
			if got := checksums(t, cdir); !slices.Equal(got, before) {
				t.Errorf("a refused copy changed the container:\nbefore %q\nafter  %q", before, got)
			}
			du := diskUsage(t, cdir)
			if du-usage >= 1<<20 {
				t.Errorf("du of the container grew from %d to %d bytes", usage, du)
			}
			t.Logf("refused in %v: %d %s; du %d bytes, as before", took.Round(time.Millisecond), code, strings.TrimSpace(body), du)
		})
	}
	// The copy is whole again once it fits.
	if code, body := p.putArchive(t, "bounded", "/", fileTar(t, "more.txt", "more")); code/100 != 2 {
		t.Fatalf("copy after the refusals: %d %s", code, body)
	}
	mustCimage(t, p, "new", "--container", "bounded", "--publisher", "Demo", "--name", "Bounded", "--version", "1.0")
}

// writeManyImages writes to path an OCI archive of n base images, App00000
// to App<n-1>, each with a config and a layer of its own (a tar of one
// small file).
func writeManyImages(t *testing.T, path string, n int) {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	blob := func(b []byte, mt string) ocispec.Descriptor {
		d := digest.FromBytes(b)
		blobs[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	imgs := make([]archive.Image, 0, n)
	for i := range n {
		name := fmt.Sprintf("App%05d", i)
		layer := blob(fileTar(t, "Files/"+name+".txt", name), ocispec.MediaTypeImageLayer)
		cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"},
			RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.Digest}}})
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: blob(cfg, ocispec.MediaTypeImageConfig), Layers: []ocispec.Descriptor{layer},
			Annotations: map[string]string{find.AnnotationTitle: name, find.AnnotationVersion: "1.0.0.0", find.AnnotationVendor: "Load Test"},
		}
		mb, _ := json.Marshal(m)
		imgs = append(imgs, archive.Image{RefName: strings.ToLower(name) + ":1.0.0.0", Manifest: blob(mb, ocispec.MediaTypeImageManifest), Config: m.Config, Layers: m.Layers})
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = archive.Write(context.Background(), f, imgs, func(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blobs[d.Digest])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHardeningLoadManyImages loads archives of 1,000 and 10,000 images:
// the time per image stays about the same (a load that checks each image
// against every other would take ten times as long per image at 10,000).
// Then a load of the 10,000 is cancelled while its blobs are being
// written: the store is as it was, file for file, and no image is
// recorded.
func TestHardeningLoadManyImages(t *testing.T) {
	c := startCatalogdSeeded(t, []string{"--base-layer-size", "64KiB", "--app-layer-size", "4KiB"})
	dir := t.TempDir()
	small, large := filepath.Join(dir, "1000.tar"), filepath.Join(dir, "10000.tar")
	writeManyImages(t, small, 1000)
	writeManyImages(t, large, 10000)

	load := func(p *providerd, file string, n int) time.Duration {
		t.Helper()
		start := time.Now()
		out := mustCimage(t, p, "install", "--path", file, "--output", "json")
		took := time.Since(start)
		var res api.LoadResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Images) != n {
			t.Fatalf("install --path %s: %d images (%v)\n%.500s", file, len(res.Images), err, out)
		}
		return took
	}
	pSmall := startProviderd(t, c.URL(""), "")
	tSmall := load(pSmall, small, 1000)
	pLarge := startProviderd(t, c.URL(""), "")
	tLarge := load(pLarge, large, 10000)
	perSmall, perLarge := tSmall/1000, tLarge/10000
	t.Logf("load of 1,000 images: %v (%v each); of 10,000: %v (%v each); ratio per image %.2f",
		tSmall.Round(time.Millisecond), perSmall, tLarge.Round(time.Millisecond), perLarge, float64(perLarge)/float64(perSmall))
	if perLarge > 4*perSmall {
		t.Errorf("an image of the 10,000 costs %v, of the 1,000 %v: the load is not linear", perLarge, perSmall)
	}

	// The cancel: the store that holds the 1,000 images and one from the
	// catalog is the one to keep as it was.
	p := pSmall
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	before := checksums(t, p.Root)
	imagesBefore := len(p.images(t))
	blobsBefore := len(blobFiles(t, p.Root))

	f, err := os.Open(large)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://providerd/v1/images/load", f)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/x-tar")
	answered := make(chan error, 1)
	go func() {
		resp, err := unixClient(p.Socket()).Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = fmt.Errorf("answered %d before the cancel: %.300s", resp.StatusCode, b)
		}
		answered <- err
	}()
	// Midway: once the archive is spooled and a thousand of its blobs are
	// in the store's ingest or committed.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n := newContentFiles(t, p.Root, before); n >= 1000 {
			t.Logf("cancelled with %d of the archive's files in the content store", n)
			break
		}
		select {
		case err := <-answered:
			t.Fatalf("the load ended before it could be cancelled: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the load wrote no blob within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-answered; ctx.Err() == nil {
		t.Fatalf("load: %v", err)
	}
	// The daemon sees the cancel at its next check and cleans up.
	var after []string
	for deadline := time.Now().Add(time.Minute); ; {
		after = checksums(t, p.Root)
		if slices.Equal(after, before) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(after, before) {
		t.Errorf("the store after a cancelled load differs: %d entries before, %d after; first new: %q",
			len(before), len(after), firstMissing(after, before))
	}
	if n := len(p.images(t)); n != imagesBefore {
		t.Errorf("%d images after the cancelled load, %d before", n, imagesBefore)
	}
	t.Logf("after the cancel: %d images, %d blobs, %d files and directories: as before", imagesBefore, blobsBefore, len(before))
}

// newContentFiles counts the files under root/content that the listing
// before does not hold.
func newContentFiles(t *testing.T, root string, before []string) int {
	t.Helper()
	had := map[string]bool{}
	for _, l := range before {
		had[strings.Fields(l)[0]] = true
	}
	n := 0
	filepath.WalkDir(filepath.Join(root, "content"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if rel, _ := filepath.Rel(root, path); !had[rel] {
				n++
			}
		}
		return nil
	})
	return n
}

// firstMissing is the first line of a that b does not hold.
func firstMissing(a, b []string) string {
	for _, l := range a {
		if !slices.Contains(b, l) {
			return l
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			return "gone: " + l
		}
	}
	return ""
}

// TestHardeningRemoveDuringSave removes a 32 MiB image while a save of it
// streams: the remove untags it at once, the save completes with every
// blob, the blobs are freed once it ends, and the archive installs the
// same image again.
func TestHardeningRemoveDuringSave(t *testing.T) {
	c := startCatalogdSeeded(t, []string{"--base-layer-size", "32MiB", "--app-layer-size", "4KiB", "--compression", "none"})
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	img := findImage(p.images(t), "NanoServer", "10.0.10586.0")
	if img == nil {
		t.Fatal("NanoServer 10.0.10586.0 is not installed")
	}
	blobs := blobFiles(t, p.Root)

	body, _ := json.Marshal(api.SaveRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}})
	resp, err := unixClient(p.Socket()).Post("http://providerd/v1/images/save", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("save: %d %s", resp.StatusCode, b)
	}
	saved := filepath.Join(t.TempDir(), "nano.tar")
	out, err := os.Create(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(out, resp.Body, 1<<20); err != nil {
		t.Fatalf("the first MiB of the save: %v", err)
	}

	start := time.Now()
	mustCimage(t, p, "remove", "NanoServer", "--required-version", "10.0.10586.0")
	t.Logf("remove during the save took %v", time.Since(start).Round(time.Millisecond))
	if findImage(p.images(t), "NanoServer", "") != nil {
		t.Fatal("NanoServer is still listed after its remove")
	}
	if got := blobFiles(t, p.Root); !slices.Equal(got, blobs) {
		t.Fatalf("the blobs of a running save were freed: %d of %d left", len(got), len(blobs))
	}

	n, err := io.Copy(out, resp.Body)
	if err != nil {
		t.Fatalf("the save after the remove: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if n+1<<20 < img.Size {
		t.Fatalf("the save wrote %d bytes for an image of %d", n+1<<20, img.Size)
	}
	// Once the save has ended, its lease goes and the blobs with it.
	var left []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		left = blobFiles(t, p.Root)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) != 0 {
		t.Fatalf("%d blobs left 30 s after the save ended", len(left))
	}
	// The archive verifies: every blob is checked again as it installs.
	mustCimage(t, p, "install", "--path", saved)
	again := findImage(p.images(t), "NanoServer", "10.0.10586.0")
	if again == nil || again.Digest != img.Digest {
		t.Fatalf("the saved archive installs %+v, want digest %s", again, img.Digest)
	}
	t.Logf("saved %d bytes while the image was removed; installed again as %s", n+1<<20, again.Digest)
}
