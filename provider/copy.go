package provider

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
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Bounds of one CopyToContainer.
var (
	// maxCopyBytes bounds the bytes of the files of one tar.
	maxCopyBytes int64 = 16 << 30
	// maxCopyEntries bounds the entries of one tar.
	maxCopyEntries = 1 << 20
)

// CopyToContainer extracts the tar r into the container's directory under
// dest, like `docker cp`: a file of the tar replaces a file of the same
// name, a directory merges with a directory.
//
// dest is a path inside the container: it is cleaned and rooted there
// ("a/../b" is "/b", "C:\data" is "/data"), so it cannot leave the
// directory; it is created when missing, and must not be a file. The tar
// may hold regular files and directories only. These are refused with
// InvalidArgument, naming the entry: an absolute name, a name with "..", a
// symbolic or hard link (links are refused whatever their target), a
// device or fifo, a file where the container or the tar has a directory
// (or the reverse), and a stream that is not a tar. More than 16 GiB of
// file data is TooLarge. The tar is extracted into a temporary directory
// first and moved in only once it is whole and checked, so a refused tar
// leaves nothing written. NotFound if ref names no container.
func (p *Provider) CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error {
	if p.isClosing() {
		return errClosed
	}
	rel := containerPath(dest)
	id, unlock, err := p.lockContainer(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	var name string
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		c, ok, err := getContainer(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("container %q: %w", ref, errdefs.ErrNotFound)
		}
		name = c.Name
		return nil
	})
	if err != nil {
		return err
	}

	cdir := p.containerPath(id)
	tmp, err := os.MkdirTemp(cdir, "copy-")
	if err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil {
			p.log.WithError(err).WithField("container", name).Warn("temporary copy directory not removed")
		}
	}()
	n, err := extractTar(ctx, r, tmp)
	if err != nil {
		return fmt.Errorf("copy into container %s: %w", name, err)
	}

	root, err := os.OpenRoot(cdir)
	if err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	defer root.Close()
	target := path.Join(rootfsDir, rel)
	if fi, err := root.Lstat(target); err == nil && !fi.IsDir() {
		return fmt.Errorf("copy into container %s: destination %q is not a directory: %w", name, "/"+rel, errdefs.ErrInvalidArgument)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("copy into container %s: destination %q: %w", name, "/"+rel, err)
	}
	src := filepath.Base(tmp)
	if err := merge(root, src, target, true); err != nil {
		return fmt.Errorf("copy into container %s: %w", name, err)
	}
	if err := root.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("copy into container %s: destination %q: %w", name, "/"+rel, err)
	}
	if err := merge(root, src, target, false); err != nil {
		return fmt.Errorf("copy into container %s: %w", name, err)
	}
	p.log.WithField("container", name).WithField("dest", "/"+rel).WithField("entries", n).Info("files copied into container")
	return nil
}

// containerPath cleans dest into a path relative to the container's
// directory ("." for its top): back slashes are separators, a drive letter
// is dropped, and the path is rooted before it is cleaned, so ".." cannot
// climb above the top.
func containerPath(dest string) string {
	d := strings.ReplaceAll(strings.TrimSpace(dest), `\`, "/")
	if len(d) >= 2 && d[1] == ':' && ('a' <= d[0]|0x20 && d[0]|0x20 <= 'z') {
		d = d[2:]
	}
	rel := strings.TrimPrefix(path.Clean("/"+d), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// extractTar writes the entries of the tar r under dir and returns how
// many it wrote. It refuses what CopyToContainer refuses. Every write goes
// through an os.Root on dir, which cannot leave it.
func extractTar(ctx context.Context, r io.Reader, dir string) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var total int64
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("not a valid tar stream after %d entries: %v: %w", n, err, errdefs.ErrInvalidArgument)
		}
		if n++; n > maxCopyEntries {
			return n, fmt.Errorf("more than %d entries: %w", maxCopyEntries, errdefs.ErrTooLarge)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return n, err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if name == "." {
				continue
			}
			if err := mkdirEntry(root, name); err != nil {
				return n, err
			}
		case tar.TypeReg, tar.TypeRegA:
			if name == "." {
				return n, fmt.Errorf("entry %q: a file cannot be the top directory: %w", hdr.Name, errdefs.ErrInvalidArgument)
			}
			if hdr.Size < 0 {
				return n, fmt.Errorf("entry %q: size %d: %w", hdr.Name, hdr.Size, errdefs.ErrInvalidArgument)
			}
			if total += hdr.Size; total > maxCopyBytes {
				return n, fmt.Errorf("more than %d bytes of files: %w", maxCopyBytes, errdefs.ErrTooLarge)
			}
			if err := writeEntry(ctx, root, name, hdr, tr); err != nil {
				return n, err
			}
		case tar.TypeSymlink, tar.TypeLink:
			return n, fmt.Errorf("entry %q is a link to %q: links are refused: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalidArgument)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return n, fmt.Errorf("entry %q is a device or a fifo: only files and directories are accepted: %w", hdr.Name, errdefs.ErrInvalidArgument)
		default:
			return n, fmt.Errorf("entry %q has type %q: only files and directories are accepted: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
		}
	}
}

// entryName checks a tar entry name and cleans it: absolute names and ".."
// are refused.
func entryName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("entry with an empty name: %w", errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) >= 2 && name[1] == ':') {
		return "", fmt.Errorf("entry %q has an absolute name: %w", name, errdefs.ErrInvalidArgument)
	}
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", fmt.Errorf("entry %q climbs out with \"..\": %w", name, errdefs.ErrInvalidArgument)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry %q: NUL in the name: %w", name, errdefs.ErrInvalidArgument)
	}
	return path.Clean(name), nil
}

// mkdirEntry creates the directory name and its parents.
func mkdirEntry(root *os.Root, name string) error {
	if fi, err := root.Lstat(name); err == nil {
		if fi.IsDir() {
			return nil
		}
		return fmt.Errorf("entry %q: a file of that name is earlier in the tar: %w", name, errdefs.ErrInvalidArgument)
	}
	if err := root.MkdirAll(name, 0o755); err != nil {
		return fmt.Errorf("entry %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// writeEntry writes the regular file name from the tar's current entry. A
// later entry of the same name replaces an earlier file.
func writeEntry(ctx context.Context, root *os.Root, name string, hdr *tar.Header, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := mkdirEntry(root, dir); err != nil {
			return err
		}
	}
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("entry %q: a directory of that name is earlier in the tar: %w", name, errdefs.ErrInvalidArgument)
	}
	mode := fs.FileMode(hdr.Mode)&0o755 | 0o644
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	_, err = io.CopyN(f, ctxReader{ctx: ctx, r: r}, hdr.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("entry %q: the tar ends inside it: %w", name, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("entry %q: %w", name, err)
	}
	return nil
}

// merge moves the entries of directory src into directory dst, both
// relative to root: what dst lacks is renamed in whole, a directory present
// on both sides is merged, a file replaces a file. A directory facing a
// file is refused. With check, nothing moves: merge only reports the
// conflicts, so that a refused copy changes nothing.
func merge(root *os.Root, src, dst string, check bool) error {
	entries, err := fs.ReadDir(root.FS(), src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s, d := path.Join(src, e.Name()), path.Join(dst, e.Name())
		fi, err := root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !check {
				if err := root.Rename(s, d); err != nil {
					return err
				}
			}
		case err != nil:
			return err
		case e.IsDir() && fi.IsDir():
			if err := merge(root, s, d, check); err != nil {
				return err
			}
		case !e.IsDir() && fi.Mode().IsRegular():
			if !check {
				if err := root.Rename(s, d); err != nil {
					return err
				}
			}
		default:
			what := "a file"
			if fi.IsDir() {
				what = "a directory"
			}
			return fmt.Errorf("%q is %s in the container: the tar cannot replace it: %w",
				"/"+strings.TrimPrefix(d, rootfsDir+"/"), what, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
