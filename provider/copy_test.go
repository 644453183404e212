package provider

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// rawHeader is one 512-byte tar header in the GNU format, checksum
// included, for the headers that archive/tar does not write: a GNU sparse
// file of realSize bytes, all holes, or a PAX header.
func rawHeader(name string, typ byte, size, realSize int64) []byte {
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

// paxTar is a tar of one entry whose PAX header holds recs (already
// encoded), with the data body.
func paxTar(name string, recs string, body []byte) []byte {
	pad := func(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }
	out := rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(recs)), 0)
	out = append(out, pad([]byte(recs))...)
	out = append(out, rawHeader(name, tar.TypeReg, int64(len(body)), 0)...)
	out = append(out, pad(body)...)
	return append(out, make([]byte, 1024)...)
}

// paxRecord is one record of a PAX header, "<length> key=value\n".
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + len(fmt.Sprint(len(rec)))
	if len(fmt.Sprint(n)) != len(fmt.Sprint(len(rec))) {
		n++
	}
	return fmt.Sprint(n) + rec
}

// newContainerEnv is a bare provider with a container "c1" on an image
// that has no blob, for the tests of copies alone.
func newContainerEnv(t *testing.T) (*env, string) {
	t.Helper()
	e := newBareEnv(t)
	putFakeImage(t, e.p, "Base", digest.FromString("base image"))
	c, err := e.p.CreateContainer(context.Background(), api.ContainerCreateRequest{Image: "Base", Name: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	return e, c.ID
}

func TestCopyRefusesSparseFiles(t *testing.T) {
	e, id := newContainerEnv(t)
	gnu := append(rawHeader("holes", tar.TypeGNUSparse, 0, 4<<30), make([]byte, 1024)...)
	pax := paxTar("holes", paxRecord("GNU.sparse.size", "4294967296")+paxRecord("GNU.sparse.numblocks", "1")+
		paxRecord("GNU.sparse.map", "4294967295,1"), []byte("x"))
	for _, tt := range []struct {
		name string
		tar  []byte
	}{{"GNU sparse type", gnu}, {"PAX sparse records", pax}} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.p.CopyToContainer(context.Background(), "c1", "/", bytes.NewReader(tt.tar))
			mustClass(t, err, errdefs.ErrInvalidArgument)
			if !strings.Contains(err.Error(), "sparse") {
				t.Errorf("error %q does not say sparse", err)
			}
			if got := e.containerDir(id); !slices.Equal(got, []string{rootfsDir}) {
				t.Errorf("container directory %q after a refused copy", got)
			}
		})
	}
}

// deepName is a path of components of at most 255 bytes, n bytes long.
func deepName(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strings.Repeat("d", min(255, n-b.Len())))
	}
	return b.String()
}

func TestCopyNameLimits(t *testing.T) {
	e, id := newContainerEnv(t)
	ctx := context.Background()
	// The longest name: the absolute path in the container's directory
	// is PATH_MAX-1 bytes.
	longest := maxPath - 1 - len(filepath.Join(e.p.containerPath(id), rootfsDir)) - 1
	huge := strings.Repeat("n", 900<<10)
	tests := []struct {
		name string
		dest string
		tar  []tarEntry
		ok   bool
		text string
	}{
		{name: "component of 255 bytes", dest: "/", tar: []tarEntry{{name: strings.Repeat("a", 255), body: "x"}}, ok: true},
		{name: "component of 256 bytes", dest: "/", tar: []tarEntry{{name: strings.Repeat("b", 256), body: "x"}}, text: "256 bytes"},
		{name: "longest path", dest: "/", tar: []tarEntry{{name: deepName(longest), body: "deep"}}, ok: true},
		{name: "path one byte too long", dest: "/", tar: []tarEntry{{name: deepName(longest + 1), body: "x"}}, text: "must stay under 4096"},
		{name: "destination and name too long", dest: "/" + strings.Repeat("e", 200), tar: []tarEntry{{name: deepName(longest - 200), body: "x"}},
			text: "must stay under 4096"},
		{name: "destination component too long", dest: "/" + strings.Repeat("f", 300), tar: []tarEntry{{name: "x", body: "x"}}, text: "300 bytes"},
		{name: "huge name", dest: "/", tar: []tarEntry{{name: huge, body: "x"}}, text: fmt.Sprintf("(%d bytes)", len(huge))},
		{name: "huge directory name", dest: "/", tar: []tarEntry{{name: huge + "/", typ: tar.TypeDir}}, text: "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tree(t, filepath.Join(e.p.containerPath(id), rootfsDir))
			err := e.p.CopyToContainer(ctx, "c1", tt.dest, makeTar(t, tt.tar...))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			mustClass(t, err, errdefs.ErrInvalidArgument)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error of %d bytes: the name is not cut", len(err.Error()))
			}
			if got := tree(t, filepath.Join(e.p.containerPath(id), rootfsDir)); !slices.Equal(got, before) {
				t.Errorf("a refused copy changed the container")
			}
		})
	}
}

// TestCopiedFilesAreCommittable copies the deepest and longest path the
// copy accepts, and commits the container.
func TestCopiedFilesAreCommittable(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "deep"})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(e.p.containerPath(c.ID), rootfsDir)
	longest := maxPath - 1 - len(rootfs) - 1
	deep := strings.Repeat("a/", (longest-1)/2) // the most components
	deep = deep + strings.Repeat("z", longest-len(deep))
	odd := []string{"bad\xffbyte.txt", strings.Repeat("é", 127), "line\nbreak", `back\slash`, strings.Repeat("é", 60) + "/" + strings.Repeat("\xfe", 255)}
	for _, name := range append([]string{deepName(longest), deep}, odd...) {
		if err := e.p.CopyToContainer(ctx, "deep", "/", makeTar(t, tarEntry{name: name, body: "x"})); err != nil {
			t.Fatalf("copy of a %d-byte path: %v", len(name), err)
		}
	}
	img, err := e.p.Commit(ctx, api.CommitRequest{Container: "deep", Name: "Deep", Publisher: "Demo", Version: "1.0"})
	if err != nil {
		t.Fatalf("commit of what the copy accepted: %v", err)
	}
	if img.Name != "Deep" {
		t.Errorf("committed %+v", img)
	}
}

// TestCopyIsAtomic: a tar that goes over the container's limit after some
// of its files were written leaves the container as it was.
func TestCopyIsAtomic(t *testing.T) {
	e, id := newContainerEnv(t)
	ctx := context.Background()
	rootfs := filepath.Join(e.p.containerPath(id), rootfsDir)
	if err := e.p.CopyToContainer(ctx, "c1", "/", makeTar(t, tarEntry{name: "kept.txt", body: "0123456789"})); err != nil {
		t.Fatal(err)
	}
	e.p.containerMaxSize = 100
	want := tree(t, rootfs)
	tests := []struct {
		name    string
		entries []tarEntry
		want    error
	}{
		{"over the limit at the last file", []tarEntry{{name: "a/one.txt", body: strings.Repeat("1", 40)},
			{name: "kept.txt", body: "replaced"}, {name: "b/two.txt", body: strings.Repeat("2", 60)}}, errdefs.ErrTooLarge},
		{"one file over the limit", []tarEntry{{name: "big.txt", body: strings.Repeat("3", 91)}}, errdefs.ErrTooLarge},
		{"bad entry after good ones", []tarEntry{{name: "a/one.txt", body: "1"}, {name: "kept.txt", body: "replaced"},
			{name: "../out", body: "x"}}, errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.p.CopyToContainer(ctx, "c1", "/", makeTar(t, tt.entries...))
			mustClass(t, err, tt.want)
			if got := tree(t, rootfs); !slices.Equal(got, want) {
				t.Errorf("container %q after a refused copy, want %q", got, want)
			}
			if got := e.containerDir(id); !slices.Equal(got, []string{rootfsDir}) {
				t.Errorf("staging left: %q", got)
			}
		})
	}
	// What fits goes in: 10 bytes there and 90 more.
	if err := e.p.CopyToContainer(ctx, "c1", "/", makeTar(t, tarEntry{name: "fits.txt", body: strings.Repeat("4", 90)})); err != nil {
		t.Fatal(err)
	}
}

// TestCopyChecksFreeSpace: a copy that would leave less than the reserve
// free is InsufficientStorage, before the first byte or as the bytes grow,
// and changes nothing.
func TestCopyChecksFreeSpace(t *testing.T) {
	e, id := newContainerEnv(t)
	ctx := context.Background()
	rootfs := filepath.Join(e.p.containerPath(id), rootfsDir)
	var written int64
	free := uint64(0)
	e.p.freeSpace = func(string) (uint64, error) { return free - min(free, uint64(written)), nil }
	e.p.diskMargin = 1 << 20
	big := makeTar(t, tarEntry{name: "big.bin", body: strings.Repeat("x", 3*spaceCheckInterval)})
	for _, tt := range []struct {
		name string
		free uint64
	}{
		{"no room at all", 1 << 20},
		{"room for the first chunk only", 1<<20 + 2*spaceCheckInterval},
	} {
		t.Run(tt.name, func(t *testing.T) {
			free, written = tt.free, 0
			big.Seek(0, 0)
			err := e.p.CopyToContainer(ctx, "c1", "/", &countingReader{r: big, n: &written})
			mustClass(t, err, errdefs.ErrInsufficientStorage)
			if !strings.Contains(err.Error(), e.root) {
				t.Errorf("error %q does not name the root", err)
			}
			if got := tree(t, rootfs); len(got) != 0 {
				t.Errorf("container %q after a refused copy", got)
			}
			if got := e.containerDir(id); !slices.Equal(got, []string{rootfsDir}) {
				t.Errorf("staging left: %q", got)
			}
		})
	}
}

// countingReader counts the bytes read from r into *n.
type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n *int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	*c.n += int64(n)
	return n, err
}

func TestStorageError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"ENOSPC", &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true},
		{"EDQUOT", fmt.Errorf("entry: %w", &fs.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}), true},
		{"other errno", &fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, false},
		{"plain", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storageError(tt.err, "/root", "a file")
			if got := errdefs.IsInsufficientStorage(err); got != tt.want {
				t.Fatalf("storageError(%v): %v, class InsufficientStorage %v, want %v", tt.err, err, got, tt.want)
			}
			if tt.want && !strings.Contains(err.Error(), "/root") {
				t.Errorf("%q does not name the root", err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("%v does not wrap %v", err, tt.err)
			}
		})
	}
	if storageError(nil, "/root", "x") != nil {
		t.Error("storageError(nil) is not nil")
	}
}
