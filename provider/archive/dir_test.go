package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// extract writes the entries of archive a under dir, as `tar -x` would.
func extract(t *testing.T, a []byte, dir string) {
	t.Helper()
	for _, e := range untar(t, a) {
		p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(e.hdr.Linkname, p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, e.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWriteDir: a layout directory, and an extracted docker archive, are
// streamed as tars that Read takes, what is no part of them left out.
func TestWriteDir(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	docker := newDockerFixture(t, "nanoserver:10.0.10586.0", "microsoft/iis:1.0.0.0")
	for _, tc := range []struct {
		name    string
		archive []byte
		extra   func(t *testing.T, dir string)
		images  int
	}{
		{"layout", fx.archive(t), func(t *testing.T, dir string) {
			// oras leaves an ingest directory; a README is no part of it.
			os.Mkdir(filepath.Join(dir, "ingest"), 0o755)
			os.WriteFile(filepath.Join(dir, "README"), []byte("hi"), 0o644)
		}, 3},
		{"layout without manifest.json", fx.archive(t), func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "manifest.json"))
		}, 3},
		{"extracted skopeo docker-archive", docker.skopeoArchive(t), nil, 2},
		{"extracted legacy docker save", docker.legacyArchive(t), nil, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			extract(t, tc.archive, dir)
			if tc.extra != nil {
				tc.extra(t, dir)
			}
			var buf bytes.Buffer
			if err := WriteDir(ctx, &buf, dir); err != nil {
				t.Fatalf("WriteDir: %v", err)
			}
			var again bytes.Buffer
			if err := WriteDir(ctx, &again, dir); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Errorf("two WriteDirs of the same directory differ (%v)", err)
			}
			c, err := Read(ctx, bytes.NewReader(buf.Bytes()), int64(buf.Len()), newStore(t), Limits{})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(c.Images) != tc.images {
				t.Errorf("%d images, want %d", len(c.Images), tc.images)
			}
			for _, e := range untar(t, buf.Bytes()) {
				if strings.HasPrefix(e.hdr.Name, "ingest") || e.hdr.Name == "README" {
					t.Errorf("entry %s is no part of the archive", e.hdr.Name)
				}
			}
		})
	}
}

func TestWriteDirRefuses(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	for _, tc := range []struct {
		name string
		make func(t *testing.T, dir string) string
		want string
	}{
		{"no layout", func(t *testing.T, dir string) string {
			os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o644)
			return dir
		}, "neither index.json nor manifest.json"},
		{"a file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "x.tar")
			os.WriteFile(p, []byte("x"), 0o644)
			return p
		}, "not a directory"},
		{"a blob that is a link", func(t *testing.T, dir string) string {
			extract(t, fx.archive(t), dir)
			os.Symlink("/etc/passwd", filepath.Join(dir, "blobs", "sha256", strings.Repeat("0", 64)))
			return dir
		}, "symbolic link, not a regular file"},
		{"index.json a directory", func(t *testing.T, dir string) string {
			os.Mkdir(filepath.Join(dir, "index.json"), 0o755)
			return dir
		}, "directory, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteDir(ctx, &buf, tc.make(t, t.TempDir()))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteDir: %v, want an invalid argument saying %q", err, tc.want)
			}
		})
	}
}
