package provider

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// tarEntry is one entry of a test tar.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	linkname string
}

// makeTar builds a tar of entries; a typ of 0 is a regular file.
func makeTar(t *testing.T, entries ...tarEntry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o644, Linkname: e.linkname}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if typ == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

// tree lists the files and directories under dir, "name" for files with
// their content after "=", "name/" for directories.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, rel+"="+string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// containerDir lists the entries of a container's directory (rootfs and
// any leftover).
func (e *env) containerDir(id string) []string {
	e.t.Helper()
	entries, err := os.ReadDir(e.p.containerPath(id))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	item := e.cat.item("nanoserver:10.0.10586.0")
	e.mustInstall(nano10586())

	tests := []struct {
		name  string
		image string
	}{
		{name: "by-name", image: "NanoServer"},
		{name: "by-name-version", image: "nanoserver:10.0.10586.0"},
		{name: "by-digest", image: item.Digest.String()},
		{name: "by-prefix", image: item.Digest.Encoded()[:8]},
	}
	var ids []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: tt.image, Name: tt.name})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.ID) != containerIDLen || !isHex(c.ID) {
				t.Errorf("id %q, want 64 hex", c.ID)
			}
			if c.Name != tt.name || c.State != api.ContainerCreated || c.ImageDigest != item.Digest.String() ||
				c.Image != "NanoServer 10.0.10586.0" || c.ParentImageName != "NanoServer" || c.Created.IsZero() {
				t.Errorf("container %+v", c)
			}
			if fi, err := os.Stat(filepath.Join(e.p.containerPath(c.ID), rootfsDir)); err != nil || !fi.IsDir() {
				t.Errorf("rootfs: %v", err)
			}
			ids = append(ids, c.ID)
		})
	}
	list, err := e.p.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(tests) {
		t.Fatalf("%d containers listed, want %d", len(list), len(tests))
	}

	// Generated names are unique and valid.
	gen, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer"})
	if err != nil {
		t.Fatal(err)
	}
	if !containerNameRE.MatchString(gen.Name) || slices.ContainsFunc(tests, func(tt struct{ name, image string }) bool { return tt.name == gen.Name }) {
		t.Errorf("generated name %q", gen.Name)
	}

	refusals := []struct {
		name string
		req  api.ContainerCreateRequest
		want error
	}{
		{name: "taken name", req: api.ContainerCreateRequest{Image: "NanoServer", Name: "by-name"}, want: errdefs.ErrAlreadyExists},
		{name: "bad name", req: api.ContainerCreateRequest{Image: "NanoServer", Name: "-bad"}, want: errdefs.ErrInvalidArgument},
		{name: "name with slash", req: api.ContainerCreateRequest{Image: "NanoServer", Name: "a/b"}, want: errdefs.ErrInvalidArgument},
		{name: "no image", req: api.ContainerCreateRequest{Name: "x"}, want: errdefs.ErrInvalidArgument},
		{name: "image not installed", req: api.ContainerCreateRequest{Image: "WindowsServerCore", Name: "x"}, want: errdefs.ErrNotFound},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.CreateContainer(ctx, tt.req)
			mustClass(t, err, tt.want)
		})
	}
	if list, _ := e.p.Containers(ctx); len(list) != len(tests)+1 {
		t.Errorf("refused creations left containers: %d", len(list))
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, containersDir)); len(entries) != len(tests)+1 {
		t.Errorf("refused creations left directories: %d", len(entries))
	}

	// Refs: id, name, prefix.
	first := ids[0]
	for _, ref := range []string{first, "by-name", first[:4], first[:12]} {
		c, err := e.p.Container(ctx, ref)
		if err != nil || c.ID != first {
			t.Errorf("Container(%q): %+v, %v", ref, c, err)
		}
	}
	_, err = e.p.Container(ctx, first[:3])
	mustClass(t, err, errdefs.ErrNotFound)
	_, err = e.p.Container(ctx, "nothing")
	mustClass(t, err, errdefs.ErrNotFound)

	// States: start, start again, stop, stop again.
	c, err := e.p.StartContainer(ctx, "by-name")
	if err != nil || c.State != api.ContainerRunning {
		t.Fatalf("start: %+v, %v", c, err)
	}
	if c, err = e.p.StartContainer(ctx, first); err != nil || c.State != api.ContainerRunning {
		t.Errorf("start of a running container: %+v, %v", c, err)
	}
	err = e.p.RemoveContainer(ctx, "by-name", false)
	mustClass(t, err, errdefs.ErrConflict)
	if c, err = e.p.StopContainer(ctx, "by-name"); err != nil || c.State != api.ContainerStopped {
		t.Errorf("stop: %+v, %v", c, err)
	}
	if c, err = e.p.StopContainer(ctx, "by-name"); err != nil || c.State != api.ContainerStopped {
		t.Errorf("stop of a stopped container: %+v, %v", c, err)
	}
	if c, err = e.p.StopContainer(ctx, "by-digest"); err != nil || c.State != api.ContainerStopped {
		t.Errorf("stop of a created container: %+v, %v", c, err)
	}

	// Remove: a stopped one, then a running one with force.
	if err := e.p.RemoveContainer(ctx, "by-name", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.p.containerPath(first)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("directory of a removed container: %v", err)
	}
	if _, err := e.p.StartContainer(ctx, "by-prefix"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.RemoveContainer(ctx, "by-prefix", true); err != nil {
		t.Errorf("forced removal of a running container: %v", err)
	}
	mustClass(t, e.p.RemoveContainer(ctx, "by-name", false), errdefs.ErrNotFound)
	if list, _ := e.p.Containers(ctx); len(list) != len(tests)-1 {
		t.Errorf("%d containers left, want %d", len(list), len(tests)-1)
	}
}

func TestContainerIDPrefixAmbiguous(t *testing.T) {
	containers := map[string]containerRecord{
		"abcd" + strings.Repeat("1", 60): {Name: "one"},
		"abcd" + strings.Repeat("2", 60): {Name: "two"},
		"0123" + strings.Repeat("3", 60): {Name: "abcd"},
	}
	tests := []struct {
		name   string
		ref    string
		wantID string
		want   error
	}{
		{name: "name wins over prefix", ref: "abcd", wantID: "0123" + strings.Repeat("3", 60)},
		{name: "longer prefix", ref: "abcd1", wantID: "abcd" + strings.Repeat("1", 60)},
		{name: "short prefix", ref: "abc", want: errdefs.ErrNotFound},
		{name: "unique prefix", ref: "0123", wantID: "0123" + strings.Repeat("3", 60)},
		{name: "empty", ref: " ", want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _, err := resolveContainer(containers, tt.ref)
			if tt.want != nil {
				mustClass(t, err, tt.want)
				return
			}
			if err != nil || id != tt.wantID {
				t.Errorf("resolve %q: %q, %v", tt.ref, id, err)
			}
		})
	}
	delete(containers, "0123"+strings.Repeat("3", 60))
	_, _, err := resolveContainer(containers, "abcd")
	mustClass(t, err, errdefs.ErrInvalidArgument)
	for _, want := range []string{"ambiguous", "one", "two"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestCopyToContainer(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(e.p.containerPath(c.ID), rootfsDir)

	err = e.p.CopyToContainer(ctx, "web1", `C:\inetpub`, makeTar(t,
		tarEntry{name: "wwwroot/", typ: tar.TypeDir},
		tarEntry{name: "wwwroot/index.html", body: "hello"},
		tarEntry{name: "./web.config", body: "<config/>"},
	))
	if err != nil {
		t.Fatal(err)
	}
	// A second copy merges: a file replaced, a file added.
	err = e.p.CopyToContainer(ctx, c.ID[:6], "/inetpub/../inetpub", makeTar(t,
		tarEntry{name: "wwwroot/index.html", body: "hello again"},
		tarEntry{name: "wwwroot/about.html", body: "about"},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"inetpub/", "inetpub/web.config=<config/>", "inetpub/wwwroot/",
		"inetpub/wwwroot/about.html=about", "inetpub/wwwroot/index.html=hello again"}
	if got := tree(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("rootfs %q, want %q", got, want)
	}

	refused := []struct {
		name string
		dest string
		tar  []tarEntry
		want error
		text string
	}{
		{name: "dot dot", dest: "/", tar: []tarEntry{{name: "ok.txt", body: "x"}, {name: "../escape.txt", body: "x"}},
			want: errdefs.ErrInvalidArgument, text: `"../escape.txt"`},
		{name: "nested dot dot", dest: "/", tar: []tarEntry{{name: "a/../../escape.txt", body: "x"}},
			want: errdefs.ErrInvalidArgument, text: ".."},
		{name: "absolute", dest: "/", tar: []tarEntry{{name: "/etc/passwd", body: "x"}},
			want: errdefs.ErrInvalidArgument, text: "absolute"},
		{name: "symlink", dest: "/", tar: []tarEntry{{name: "ok.txt", body: "x"}, {name: "link", typ: tar.TypeSymlink, linkname: "/etc"}},
			want: errdefs.ErrInvalidArgument, text: "links are refused"},
		{name: "symlink then write through it", dest: "/", tar: []tarEntry{{name: "link", typ: tar.TypeSymlink, linkname: "../../.."},
			{name: "link/escape.txt", body: "x"}}, want: errdefs.ErrInvalidArgument, text: "links are refused"},
		{name: "hard link", dest: "/", tar: []tarEntry{{name: "hard", typ: tar.TypeLink, linkname: "/etc/passwd"}},
			want: errdefs.ErrInvalidArgument, text: "links are refused"},
		{name: "device", dest: "/", tar: []tarEntry{{name: "dev", typ: tar.TypeChar}},
			want: errdefs.ErrInvalidArgument, text: "device"},
		{name: "file over a directory", dest: "/", tar: []tarEntry{{name: "new.txt", body: "x"}, {name: "inetpub", body: "x"}},
			want: errdefs.ErrInvalidArgument, text: "directory"},
		{name: "destination is a file", dest: "/inetpub/web.config", tar: []tarEntry{{name: "x.txt", body: "x"}},
			want: errdefs.ErrInvalidArgument, text: "not a directory"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := e.p.CopyToContainer(ctx, "web1", tt.dest, makeTar(t, tt.tar...))
			mustClass(t, err, tt.want)
			t.Log(err)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if got := tree(t, rootfs); !slices.Equal(got, want) {
				t.Errorf("a refused tar changed the rootfs: %q", got)
			}
			if got := e.containerDir(c.ID); !slices.Equal(got, []string{rootfsDir}) {
				t.Errorf("a refused tar left %q in the container directory", got)
			}
		})
	}
	t.Run("not a tar", func(t *testing.T) {
		err := e.p.CopyToContainer(ctx, "web1", "/", strings.NewReader(strings.Repeat("garbage ", 200)))
		mustClass(t, err, errdefs.ErrInvalidArgument)
	})
	t.Run("truncated", func(t *testing.T) {
		b := makeTar(t, tarEntry{name: "big.txt", body: strings.Repeat("x", 4096)})
		raw := make([]byte, 1024)
		n, _ := b.Read(raw)
		err := e.p.CopyToContainer(ctx, "web1", "/", bytes.NewReader(raw[:n]))
		mustClass(t, err, errdefs.ErrInvalidArgument)
	})
	t.Run("too large", func(t *testing.T) {
		old := e.p.containerMaxSize
		e.p.containerMaxSize = 8
		defer func() { e.p.containerMaxSize = old }()
		err := e.p.CopyToContainer(ctx, "web1", "/", makeTar(t, tarEntry{name: "a", body: "12345"}, tarEntry{name: "b", body: "67890"}))
		mustClass(t, err, errdefs.ErrTooLarge)
	})
	if got := tree(t, rootfs); !slices.Equal(got, want) {
		t.Errorf("refused tars changed the rootfs: %q", got)
	}
	// Nothing was written outside the container's directory either.
	if _, err := os.Stat(filepath.Join(e.p.containerPath(c.ID), "escape.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("escape.txt: %v", err)
	}
	mustClass(t, e.p.CopyToContainer(ctx, "nothing", "/", makeTar(t)), errdefs.ErrNotFound)
}

func TestContainerPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "."},
		{"/", "."},
		{`C:\`, "."},
		{`C:\inetpub\wwwroot`, "inetpub/wwwroot"},
		{"../../etc", "etc"},
		{"a/./b/../c", "a/c"},
		{"/data/", "data"},
	}
	for _, tt := range tests {
		if got := containerPath(tt.in); got != tt.want {
			t.Errorf("containerPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewCleansOrphans(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(e.root, containersDir, newContainerID())
	spool := filepath.Join(e.root, tmpDir, "load-1.tar")
	for _, d := range []string{filepath.Join(orphan, rootfsDir), filepath.Dir(spool)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	leftover := filepath.Join(e.p.containerPath(c.ID), "copy-123")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	e.p = e.open()
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan directory: %v", err)
	}
	if _, err := os.Stat(spool); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("spool file: %v", err)
	}
	if got := e.containerDir(c.ID); !slices.Equal(got, []string{rootfsDir}) {
		t.Errorf("directory of a container after restart: %q, want only its rootfs", got)
	}
	got, err := e.p.Container(ctx, "kept")
	if err != nil || got.ImageDigest != e.cat.item("nanoserver:10.0.10586.0").Digest.String() {
		t.Errorf("container after restart: %+v, %v", got, err)
	}
}

func TestStatContainerPath(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.CopyToContainer(ctx, "web1", "/inetpub", makeTar(t, tarEntry{name: "wwwroot/index.html", body: "hello"})); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		dir        bool
		size       int64
		base       string
	}{
		{name: "top", path: "/", dir: true, base: "."},
		{name: "empty", path: "", dir: true, base: "."},
		{name: "dir", path: "/inetpub/wwwroot", dir: true, base: "wwwroot"},
		{name: "file", path: "/inetpub/wwwroot/index.html", size: 5, base: "index.html"},
		{name: "windows path", path: `C:\inetpub\wwwroot\index.html`, size: 5, base: "index.html"},
		{name: "climbing", path: "/../../inetpub", dir: true, base: "inetpub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := e.p.StatContainerPath(ctx, c.ID[:8], tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() != tt.dir || (!tt.dir && (fi.Size() != tt.size || !fi.Mode().IsRegular())) || fi.Name() != tt.base {
				t.Errorf("stat %q: dir %v size %d mode %v name %q", tt.path, fi.IsDir(), fi.Size(), fi.Mode(), fi.Name())
			}
		})
	}
	for _, p := range []string{"/nothing", "/inetpub/wwwroot/index.html/below"} {
		_, err := e.p.StatContainerPath(ctx, "web1", p)
		mustClass(t, err, errdefs.ErrNotFound)
	}
	_, err = e.p.StatContainerPath(ctx, "nosuch", "/")
	mustClass(t, err, errdefs.ErrNotFound)
}

func TestUntagUsedImage(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	e.mustInstall(api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.14393.0"}})
	high := e.cat.item("nanoserver:10.0.14393.0").Digest.String()
	low := e.cat.item("nanoserver:10.0.10586.0").Digest.String()
	refsOf := func(d string) []string {
		t.Helper()
		imgs, err := e.p.Images(ctx, GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			if img.Digest == d {
				return img.Refs
			}
		}
		t.Fatalf("image %s is not listed", d)
		return nil
	}
	if err := e.p.Tag(ctx, high, "mynano", "base"); err != nil {
		t.Fatal(err)
	}

	// No container uses it: it is removed, not untagged.
	_, err := e.p.UntagUsedImage(ctx, high)
	mustClass(t, err, errdefs.ErrFailedPrecondition)
	if got := refsOf(high); !slices.Equal(got, []string{"mynano:base", "nanoserver:10.0.14393.0", "nanoserver:latest"}) {
		t.Fatalf("a refused untag changed the refs: %q", got)
	}

	if _, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: high, Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	refs, err := e.p.UntagUsedImage(ctx, high)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(refs, []string{"mynano:base", "nanoserver:10.0.14393.0", "nanoserver:latest"}) {
		t.Errorf("untagged %q", refs)
	}
	if got := refsOf(high); len(got) != 0 {
		t.Errorf("refs left on the untagged image: %q", got)
	}
	// latest moved to the version that keeps its refs.
	if got := refsOf(low); !slices.Equal(got, []string{"nanoserver:10.0.10586.0", "nanoserver:latest"}) {
		t.Errorf("refs of the other version: %q", got)
	}
	// The image stays, for its container, and cannot be removed.
	if c, err := e.p.Container(ctx, "c1"); err != nil || c.ImageDigest != high {
		t.Fatalf("container c1: %+v, %v", c, err)
	}
	_, err = e.p.Remove(ctx, RemoveOptions{ID: high})
	mustClass(t, err, errdefs.ErrConflict)

	// A pull of it again gives the refs back, and latest with them.
	added, err := e.p.RestoreImageRefs(ctx, high)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []string{"nanoserver:10.0.14393.0", "nanoserver:latest"}) {
		t.Errorf("restored %q", added)
	}
	if got := refsOf(high); !slices.Equal(got, []string{"nanoserver:10.0.14393.0", "nanoserver:latest"}) {
		t.Errorf("refs after the restore: %q", got)
	}
	if got := refsOf(low); !slices.Equal(got, []string{"nanoserver:10.0.10586.0"}) {
		t.Errorf("refs of the other version after the restore: %q", got)
	}
	if added, err := e.p.RestoreImageRefs(ctx, high); err != nil || len(added) != 0 {
		t.Errorf("a second restore: %q, %v", added, err)
	}
	_, err = e.p.RestoreImageRefs(ctx, "sha256:"+strings.Repeat("0", 64))
	mustClass(t, err, errdefs.ErrNotFound)
}
