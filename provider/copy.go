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
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// maxCopyEntries bounds the entries of the tar of one CopyToContainer.
var maxCopyEntries = 1 << 20

// DefaultContainerMaxSize is Config.ContainerMaxSize when it is not set.
const DefaultContainerMaxSize = 16 << 30

// The limits of the file system on names (Linux's NAME_MAX and PATH_MAX,
// whose count includes the NUL that ends a path). A name that the kernel
// would refuse when New-ContainerImage walks the container's directory is
// refused by the copy.
const (
	maxNameComponent = 255
	maxPath          = 4096
)

// CopyToContainer extracts the tar r into the container's directory under
// dest, like `docker cp`: a file of the tar replaces a file of the same
// name, a directory merges with a directory.
//
// dest is a path inside the container: it is cleaned and rooted there
// ("a/../b" is "/b", "C:\data" is "/data"), so it cannot leave the
// directory; it is created when missing, and must not be a file. The tar
// may hold regular files and directories only. These are refused with
// InvalidArgument, naming the entry (cut to its first 64 bytes and its
// length when it is long): an absolute name, a name with "..", a symbolic
// or hard link (links are refused whatever their target), a device or fifo,
// a sparse file (GNU or PAX), a name component over 255 bytes or a path
// that would reach PATH_MAX (4096) in the container's directory on this
// host, a file where the container or the tar has a directory (or the
// reverse), and a stream that is not a tar. Whatever the copy accepts,
// Commit can pack.
//
// The container's files, with the tar's, may hold Config.ContainerMaxSize
// bytes (TooLarge beyond; a file that replaces another counts in full while
// the copy runs). The free space of the root is checked before the first
// byte and as the bytes are written, and a copy that would leave less than
// the reserve is InsufficientStorage, as is a write the filesystem refuses
// with ENOSPC or EDQUOT. The tar is extracted into a staging directory
// beside the container's files, on the same filesystem, and moved in by
// renames only once it is whole and checked: a refused tar leaves the
// container as it was, and the staging directory is removed. NotFound if
// ref names no container.
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
			return fmt.Errorf("no such container %q: %w", ref, errdefs.ErrNotFound)
		}
		name = c.Name
		return nil
	})
	if err != nil {
		return err
	}
	if err := p.copyInto(ctx, id, name, rel, r); err != nil {
		return fmt.Errorf("copy into container %s: %w", name, storageError(err, p.root, "the files copied into container "+name))
	}
	return nil
}

// copyInto is CopyToContainer once the container's lock is held.
func (p *Provider) copyInto(ctx context.Context, id, name, rel string, r io.Reader) error {
	cdir := p.containerPath(id)
	destAbs := filepath.Join(cdir, rootfsDir, filepath.FromSlash(rel))
	if err := checkPathLimits("/"+rel, rel, len(cdir)+len("/"+rootfsDir)); err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	guard := p.newSpaceGuard("the files copied into container " + name)
	if err := guard.check(0); err != nil {
		return err
	}
	root, err := os.OpenRoot(cdir)
	if err != nil {
		return err
	}
	defer root.Close()
	used, err := treeSize(ctx, filepath.Join(cdir, rootfsDir))
	if err != nil {
		return fmt.Errorf("size of the container's files: %w", err)
	}

	staging, err := os.MkdirTemp(cdir, "copy-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(staging); err != nil {
			p.log.WithError(err).WithField("container", name).Warn("staging directory of a copy not removed")
		}
	}()
	x := &extraction{
		ctx:    ctx,
		prefix: len(destAbs),
		limit:  p.containerMaxSize,
		used:   used,
		guard:  guard,
	}
	if x.root, err = os.OpenRoot(staging); err != nil {
		return err
	}
	err = x.extract(r)
	x.root.Close()
	if err != nil {
		return err
	}

	target := path.Join(rootfsDir, rel)
	if fi, err := root.Lstat(target); err == nil && !fi.IsDir() {
		return fmt.Errorf("destination %q is not a directory: %w", "/"+rel, errdefs.ErrInvalidArgument)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("destination %q: %w", "/"+rel, err)
	}
	src := filepath.Base(staging)
	if err := merge(root, src, target, true); err != nil {
		return err
	}
	if err := root.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("destination %q: %w", "/"+rel, err)
	}
	if err := merge(root, src, target, false); err != nil {
		return err
	}
	p.log.WithField("container", name).WithField("dest", "/"+rel).WithField("entries", x.entries).
		WithField("bytes", x.written).Info("files copied into container")
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

// treeSize adds up the sizes of the regular files under dir. It walks
// by full paths, which the kernel resolves in one call each, rather than
// through an os.Root, which opens every directory on the way for each
// call: a container's directories may be 2000 deep. It follows no link
// (a container holds none: copies refuse them).
func treeSize(ctx context.Context, dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

// extraction writes the entries of one tar into a staging directory and
// keeps the counts that bound it.
type extraction struct {
	ctx  context.Context
	root *os.Root // the staging directory; nothing is written outside it
	// prefix is the length of the absolute path of the destination in the
	// container, which every entry name extends.
	prefix int
	// limit bounds used+written, the bytes of the container's files.
	limit, used int64
	guard       *spaceGuard
	written     int64
	entries     int
}

// extract writes the entries of the tar r. It refuses what
// CopyToContainer refuses.
func (x *extraction) extract(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a valid tar stream after %d entries: %v: %w", x.entries, err, errdefs.ErrInvalidArgument)
		}
		if x.entries++; x.entries > maxCopyEntries {
			return fmt.Errorf("more than %d entries: %w", maxCopyEntries, errdefs.ErrTooLarge)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// entry writes one entry of the tar, whose data tr reads.
func (x *extraction) entry(hdr *tar.Header, tr io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	shown := cutName(hdr.Name)
	if isSparse(hdr) {
		return fmt.Errorf("entry %q is a sparse file: sparse files are refused: %w", shown, errdefs.ErrInvalidArgument)
	}
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if name != "." {
		if err := checkPathLimits(hdr.Name, name, x.prefix); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name == "." {
			return nil
		}
		return mkdirEntry(x.root, name)
	case tar.TypeReg:
		if name == "." {
			return fmt.Errorf("entry %q: a file cannot be the top directory: %w", shown, errdefs.ErrInvalidArgument)
		}
		if hdr.Size < 0 {
			return fmt.Errorf("entry %q: size %d: %w", shown, hdr.Size, errdefs.ErrInvalidArgument)
		}
		if err := x.reserve(hdr.Size); err != nil {
			return fmt.Errorf("entry %q: %w", shown, err)
		}
		return x.writeFile(name, hdr, tr)
	case tar.TypeSymlink, tar.TypeLink:
		return fmt.Errorf("entry %q is a link to %q: links are refused: %w", shown, cutName(hdr.Linkname), errdefs.ErrInvalidArgument)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("entry %q is a device or a fifo: only files and directories are accepted: %w", shown, errdefs.ErrInvalidArgument)
	default:
		return fmt.Errorf("entry %q has type %q: only files and directories are accepted: %w", shown, hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
}

// reserve refuses n more bytes when they would take the container over its
// limit.
func (x *extraction) reserve(n int64) error {
	if x.used+x.written+n > x.limit {
		return fmt.Errorf("the container's files would be more than its limit of %s (%s are there, %s copied so far): %w",
			formatBytes(uint64(x.limit)), formatBytes(uint64(x.used)), formatBytes(uint64(x.written)), errdefs.ErrTooLarge)
	}
	return nil
}

// count counts the bytes of a file as they go to disk, refusing those that
// would take the container over its limit or the disk below its reserve.
func (x *extraction) count(n int) error {
	if err := x.reserve(int64(n)); err != nil {
		return err
	}
	x.written += int64(n)
	return x.guard.check(x.written)
}

// writeFile writes the regular file name from the tar's current entry. A
// later entry of the same name replaces an earlier file.
func (x *extraction) writeFile(name string, hdr *tar.Header, r io.Reader) error {
	shown := cutName(name)
	if dir := path.Dir(name); dir != "." {
		if err := mkdirEntry(x.root, dir); err != nil {
			return err
		}
	}
	if fi, err := x.root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("entry %q: a directory of that name is earlier in the tar: %w", shown, errdefs.ErrInvalidArgument)
	}
	mode := fs.FileMode(hdr.Mode)&0o755 | 0o644
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return entryError(name, err)
	}
	_, err = io.CopyN(countingWriter{w: f, count: x.count}, ctxReader{ctx: x.ctx, r: r}, hdr.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("entry %q: the tar ends inside it: %w", shown, errdefs.ErrInvalidArgument)
	}
	return entryError(name, err)
}

// countingWriter calls count before each write, which may refuse it.
type countingWriter struct {
	w     io.Writer
	count func(n int) error
}

func (c countingWriter) Write(b []byte) (int, error) {
	if err := c.count(len(b)); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

// isSparse reports whether hdr is a sparse file: the GNU type 'S', or the
// GNU.sparse.* records of PAX.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// entryName checks a tar entry name and cleans it: absolute names and ".."
// are refused.
func entryName(name string) (string, error) {
	shown := cutName(name)
	if name == "" {
		return "", fmt.Errorf("entry with an empty name: %w", errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) >= 2 && name[1] == ':') {
		return "", fmt.Errorf("entry %q has an absolute name: %w", shown, errdefs.ErrInvalidArgument)
	}
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", fmt.Errorf("entry %q climbs out with \"..\": %w", shown, errdefs.ErrInvalidArgument)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry %q: NUL in the name: %w", shown, errdefs.ErrInvalidArgument)
	}
	return path.Clean(name), nil
}

// checkPathLimits refuses a cleaned name (raw as the caller gave it) with a
// component over maxNameComponent bytes, or that, appended to a directory
// path of prefix bytes, would not be shorter than maxPath.
func checkPathLimits(raw, name string, prefix int) error {
	for part := range strings.SplitSeq(name, "/") {
		if len(part) > maxNameComponent {
			return fmt.Errorf("%q: the name %q is %d bytes, more than the %d a file name may have: %w",
				cutName(raw), cutName(part), len(part), maxNameComponent, errdefs.ErrInvalidArgument)
		}
	}
	if n := prefix + 1 + len(name); n >= maxPath {
		return fmt.Errorf("%q: the path would be %d bytes in the container's directory, and must stay under %d: %w",
			cutName(raw), n, maxPath, errdefs.ErrInvalidArgument)
	}
	return nil
}

// cutName is s as errors and logs show it: whole when it is short, else its
// first 64 bytes (cut at a character boundary), "…" and its length.
func cutName(s string) string {
	const keep = 64
	if len(s) <= keep+16 {
		return s
	}
	n := keep
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}

// entryError names an entry in an error of the file system without
// repeating its path, which can be long.
func entryError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("entry %q: %s: %w", cutName(name), pe.Op, pe.Err)
	}
	return fmt.Errorf("entry %q: %w", cutName(name), err)
}

// mkdirEntry creates the directory name and its parents.
func mkdirEntry(root *os.Root, name string) error {
	if fi, err := root.Lstat(name); err == nil {
		if fi.IsDir() {
			return nil
		}
		return fmt.Errorf("entry %q: a file of that name is earlier in the tar: %w", cutName(name), errdefs.ErrInvalidArgument)
	}
	if err := root.MkdirAll(name, 0o755); err != nil {
		if isNoSpace(err) {
			return entryError(name, err)
		}
		// A file in the way, mostly.
		return fmt.Errorf("%w: %w", entryError(name, err), errdefs.ErrInvalidArgument)
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
				cutName("/"+strings.TrimPrefix(d, rootfsDir+"/")), what, errdefs.ErrInvalidArgument)
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
