package hostfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// nobody is the unprivileged user of the tests.
var nobody = User{UID: 65534, GID: 65534}

// asNobody returns nobody's FS, or skips the test when the daemon's rights
// cannot be dropped to it.
func asNobody(t *testing.T) FS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test drops the rights of root to uid 65534")
	}
	fsys, err := AsUser(nobody)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// sharedDir is a directory that every user may search.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenAsUser(t *testing.T) {
	fsys := asNobody(t)
	dir := sharedDir(t)
	public := filepath.Join(dir, "public")
	secret := filepath.Join(dir, "secret")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{public, 0o644}, {secret, 0o600}} {
		if err := os.WriteFile(f.path, []byte("data"), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(public, link); err != nil {
		t.Fatal(err)
	}
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	inClosed := filepath.Join(closed, "file")
	if err := os.WriteFile(inClosed, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := fsys.Open(public)
	if err != nil {
		t.Fatalf("open a readable file: %v", err)
	}
	f.Close()

	notFound := func(path string) string {
		return "cannot read " + path + ": no such file, or not readable by you"
	}
	for _, tc := range []struct {
		name, path string
		class      error
		msg        string
	}{
		{"unreadable", secret, errdefs.ErrNotFound, notFound(secret)},
		{"missing", filepath.Join(dir, "missing"), errdefs.ErrNotFound, notFound(filepath.Join(dir, "missing"))},
		{"in a closed directory", inClosed, errdefs.ErrNotFound, notFound(inClosed)},
		{"fifo", fifo, errdefs.ErrInvalidArgument, "is not a regular file (a named pipe)"},
		{"directory", dir, errdefs.ErrInvalidArgument, "is not a regular file (a directory)"},
		{"symbolic link", link, errdefs.ErrInvalidArgument, "is a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			f, err := fsys.Open(tc.path)
			if err == nil {
				f.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.class, tc.msg)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestCreateAsUser(t *testing.T) {
	fsys := asNobody(t)
	dir := sharedDir(t)
	if _, err := fsys.CreateTemp(dir, "x-*"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("create in root's directory: %v, want permission denied", err)
	}
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}

	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.CreateTemp(open, "x-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobody.UID || st.Gid != nobody.GID || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created %v uid %d gid %d, want 0600 of %d:%d", fi.Mode(), st.Uid, st.Gid, nobody.UID, nobody.GID)
	}
	// A sticky directory: root's file in it is not nobody's to replace.
	rootsFile := filepath.Join(open, "roots")
	if err := os.WriteFile(rootsFile, []byte("root's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Rename(f.Name(), rootsFile); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("rename over root's file in a sticky directory: %v, want permission denied", err)
	}
	if err := fsys.Rename(f.Name(), target); err == nil {
		t.Fatal("renamed into root's directory")
	}
	if b, _ := os.ReadFile(target); string(b) != "root's" {
		t.Fatalf("target changed: %q", b)
	}
	if err := fsys.MkdirAll(filepath.Join(dir, "new", "dir"), 0o755); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("mkdir in root's directory: %v", err)
	}
	if err := fsys.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	// The daemon's own rights are back on every thread.
	if err := os.WriteFile(filepath.Join(dir, "after"), nil, 0o600); err != nil {
		t.Fatalf("root after the switches: %v", err)
	}
}

func TestGroupsAsUser(t *testing.T) {
	const group = 4242
	fsys := asNobody(t)
	dir := sharedDir(t)
	shared := filepath.Join(dir, "group-file")
	if err := os.WriteFile(shared, []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, 0, group); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Open(shared); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("open without the group: %v", err)
	}
	member, err := AsUser(User{UID: nobody.UID, GID: nobody.GID, Groups: []uint32{group}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := member.Open(shared)
	if err != nil {
		t.Fatalf("open with the group: %v", err)
	}
	f.Close()
}

func TestProcessGroups(t *testing.T) {
	groups, err := ProcessGroups(int32(os.Getpid()), uint32(os.Getuid()))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != len(want) {
		t.Fatalf("groups %v, want %v", groups, want)
	}
	if _, err := ProcessGroups(int32(os.Getpid()), uint32(os.Getuid())+1); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("another uid: %v", err)
	}
}
