package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// dirEntry is a file of a directory that WriteDir puts in its tar.
type dirEntry struct {
	name string // in the archive
	path string // on disk
	dir  bool
	link string // the target of a symbolic link
	size int64
}

// WriteDir streams to w, as a tar that Prepare reads, the image archive
// that the directory dir holds:
//
//   - an OCI image layout, as skopeo copy … oci:DIR, crane pull --format
//     oci and oras copy --to-oci-layout write: oci-layout, index.json,
//     blobs/<alg>/*, and manifest.json and repositories when they are
//     there. Anything else in dir (oras's ingest/ directory, say) is not
//     part of the layout and is left out;
//   - an extracted docker archive (manifest.json and no index.json): the
//     files at its root and the legacy layer directories (64 hex digits)
//     with their files, a layer's symbolic link written as a link.
//
// Files are opened with the rights of the calling process, never followed
// through a symbolic link, and streamed through a fixed buffer, never held
// in memory. Entries are sorted by name with a fixed time, so the same
// directory gives the same bytes. A dir that holds neither index.json nor
// manifest.json, more than Limits' default number of entries, a file of
// the layout that is not a regular file, or a file that changes size while
// it is read are InvalidArgument errors naming the path. After an error,
// what was written to w is not a valid archive.
func WriteDir(ctx context.Context, w io.Writer, dir string) error {
	entries, err := listDir(dir)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	buf := make([]byte, copyBufferSize)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch {
		case e.dir:
			err = tw.WriteHeader(header(e.name+"/", tar.TypeDir, 0o755, 0))
		case e.link != "":
			hdr := header(e.name, tar.TypeSymlink, 0o777, 0)
			hdr.Linkname = e.link
			err = tw.WriteHeader(hdr)
		default:
			err = writeDirFile(ctx, tw, e, buf)
		}
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	return nil
}

// writeDirFile streams the regular file of e into tw.
func writeDirFile(ctx context.Context, tw *tar.Writer, e dirEntry, buf []byte) error {
	f, err := openNoFollow(e.path)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != e.size {
		return fmt.Errorf("%s: changed while the directory was read: %w", e.path, errdefs.ErrInvalidArgument)
	}
	if err := tw.WriteHeader(header(e.name, tar.TypeReg, 0o644, e.size)); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{tw}, io.LimitReader(&ctxReader{ctx: ctx, r: f}, e.size), buf)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if n != e.size {
		return fmt.Errorf("%s: shrank from %d to %d bytes while it was read: %w", e.path, e.size, n, errdefs.ErrInvalidArgument)
	}
	return nil
}

// openNoFollow opens a regular file for reading, refusing a symbolic link
// in its last element.
func openNoFollow(p string) (*os.File, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file: %w", errdefs.ErrInvalidArgument)
	}
	return os.OpenFile(p, os.O_RDONLY|oNoFollow, 0)
}

// listDir lists the entries of the archive that dir holds, sorted by name.
func listDir(dir string) ([]dirEntry, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("archive directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	}
	l := &dirLister{root: dir}
	_, errIndex := os.Lstat(filepath.Join(dir, indexFile))
	_, errLayout := os.Lstat(filepath.Join(dir, ociLayoutFile))
	_, errDocker := os.Lstat(filepath.Join(dir, dockerManifest))
	switch {
	case errIndex == nil || errLayout == nil:
		for _, name := range []string{ociLayoutFile, indexFile, dockerManifest, dockerRepos} {
			if err := l.addFile(name, true); err != nil {
				return nil, err
			}
		}
		if err := l.addBlobs(); err != nil {
			return nil, err
		}
	case errDocker == nil:
		if err := l.addDocker(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("directory %s holds neither %s nor %s: it is not an OCI image layout or a docker archive: %w", dir, indexFile, dockerManifest, errdefs.ErrInvalidArgument)
	}
	slices.SortFunc(l.entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return l.entries, nil
}

// dirLister collects the entries of an archive directory.
type dirLister struct {
	root    string
	entries []dirEntry
}

func (l *dirLister) add(e dirEntry) error {
	if len(l.entries) >= DefaultMaxEntries {
		return fmt.Errorf("directory %s: more than %d entries: %w", l.root, DefaultMaxEntries, errdefs.ErrInvalidArgument)
	}
	l.entries = append(l.entries, e)
	return nil
}

// addFile adds the regular file name (slash-separated, relative to the
// root); a missing one is skipped when optional.
func (l *dirLister) addFile(name string, optional bool) error {
	p := filepath.Join(l.root, filepath.FromSlash(name))
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) && optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive directory: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a %s, not a regular file: %w", p, typeName(fi), errdefs.ErrInvalidArgument)
	}
	return l.add(dirEntry{name: name, path: p, size: fi.Size()})
}

// addBlobs adds blobs/ and everything under it, which must be directories
// of regular files.
func (l *dirLister) addBlobs() error {
	algs, err := l.readDir(blobsDir)
	if err != nil || len(algs) == 0 {
		return err
	}
	if err := l.add(dirEntry{name: blobsDir, dir: true}); err != nil {
		return err
	}
	for _, alg := range algs {
		name := path.Join(blobsDir, alg.Name())
		if !alg.IsDir() {
			return fmt.Errorf("%s is not a directory of blobs: %w", filepath.Join(l.root, filepath.FromSlash(name)), errdefs.ErrInvalidArgument)
		}
		if err := l.add(dirEntry{name: name, dir: true}); err != nil {
			return err
		}
		blobs, err := l.readDir(name)
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if err := l.addFile(path.Join(name, b.Name()), false); err != nil {
				return err
			}
		}
	}
	return nil
}

// addDocker adds the files at the root and the legacy layer directories of
// an extracted docker archive.
func (l *dirLister) addDocker() error {
	top, err := l.readDir(".")
	if err != nil {
		return err
	}
	for _, e := range top {
		name := e.Name()
		switch {
		case e.Type().IsRegular():
			if err := l.addFile(name, false); err != nil {
				return err
			}
		case e.IsDir() && legacyDirRE.MatchString(name):
			if err := l.addLegacyDir(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// addLegacyDir adds a legacy layer directory: its files, and the symbolic
// link that stands for its layer.
func (l *dirLister) addLegacyDir(dir string) error {
	files, err := l.readDir(dir)
	if err != nil {
		return err
	}
	if err := l.add(dirEntry{name: dir, dir: true}); err != nil {
		return err
	}
	for _, f := range files {
		name := path.Join(dir, f.Name())
		if f.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(filepath.Join(l.root, filepath.FromSlash(name)))
			if err != nil {
				return fmt.Errorf("archive directory: %w", err)
			}
			if err := l.add(dirEntry{name: name, link: filepath.ToSlash(target)}); err != nil {
				return err
			}
			continue
		}
		if err := l.addFile(name, false); err != nil {
			return err
		}
	}
	return nil
}

func (l *dirLister) readDir(name string) ([]fs.DirEntry, error) {
	es, err := os.ReadDir(filepath.Join(l.root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) && name == blobsDir {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	return es, nil
}

func typeName(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}
