//go:build unix

package provider

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// TestOpenArchive: OpenArchive returns at once whatever the path is, and
// refuses all but a regular file; a missing file and an unreadable one
// read alike.
func TestOpenArchive(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "archive.tar")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
		text string
	}{
		{name: "regular file", path: file},
		{name: "missing", path: filepath.Join(dir, "none"), want: errdefs.ErrNotFound, text: "no such file, or not readable by you"},
		{name: "fifo without a writer", path: fifo, want: errdefs.ErrInvalidArgument, text: "named pipe"},
		{name: "directory", path: dir, want: errdefs.ErrInvalidArgument, text: "directory"},
		{name: "symbolic link", path: link, want: errdefs.ErrInvalidArgument, text: "symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var f *os.File
			var err error
			go func() {
				f, err = OpenArchive(tt.path)
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("OpenArchive blocked")
			}
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
				return
			}
			mustClass(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

// TestLoadFileRefusesWhatIsNotAFile: a file that is not regular, opened
// some other way, is refused before a byte is read.
func TestLoadFileRefusesWhatIsNotAFile(t *testing.T) {
	e := newBareEnv(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_, err = e.p.LoadFile(context.Background(), r, "a pipe")
	mustClass(t, err, errdefs.ErrInvalidArgument)
}
