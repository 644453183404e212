package publish

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Layer is the content of an image's own layer: a directory to pack, a
// layer file to use as it is, or generated content. The zero Layer is
// missing, which Publish refuses.
type Layer struct {
	src layerSource
}

// layerSource produces a layer. A source is read once per pass, and Publish
// may make two passes (a hashing pass, then an upload), so it must give the
// same bytes each time.
type layerSource interface {
	// check validates the source before anything is written.
	check() error
	// describe names the source in errors.
	describe() string
}

// tarSource writes an uncompressed tar stream; Publish compresses it.
type tarSource interface {
	layerSource
	// writeTar writes the tar stream; created is the mtime of every entry.
	writeTar(w io.Writer, created time.Time) error
}

// fileSource is a layer file used as it is.
type fileSource struct{ path string }

func (f fileSource) describe() string { return fmt.Sprintf("layer file %q", f.path) }

// LayerFromPath is a layer from a directory, packed into a deterministic tar
// (entries sorted, every mtime the image's Created time, uid and gid 0, no
// user or group names, modes 0755 for directories and executables and 0644
// for other files), or from a layer file used as it is: a tar, or a
// gzip-compressed tar, recognised by its magic number whatever its name.
// Publish reports a path that does not exist as errdefs.ErrNotFound, and a
// file that is not a layer as errdefs.ErrInvalidArgument.
func LayerFromPath(path string) Layer {
	return Layer{src: pathSource{path: path}}
}

// pathSource decides between a directory and a file when it is checked.
type pathSource struct{ path string }

func (p pathSource) describe() string { return fmt.Sprintf("layer %q", p.path) }

func (p pathSource) check() error { _, err := p.resolve(); return err }

func (p pathSource) resolve() (layerSource, error) {
	if p.path == "" {
		return nil, fmt.Errorf("layer: no path: %w", errdefs.ErrInvalidArgument)
	}
	fi, err := os.Stat(p.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("layer %q: %w", p.path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("layer %q: %w", p.path, err)
	}
	var src layerSource
	switch {
	case fi.IsDir():
		src = dirSource{dir: p.path}
	case fi.Mode().IsRegular():
		src = fileSource{path: p.path}
	default:
		return nil, fmt.Errorf("layer %q: neither a directory nor a regular file: %w", p.path, errdefs.ErrInvalidArgument)
	}
	if err := src.check(); err != nil {
		return nil, err
	}
	return src, nil
}

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// check opens the file and reads its first tar header (through gzip when
// the file is compressed), so a file that is not a layer is refused before
// anything is written.
func (f fileSource) check() error {
	r, err := os.Open(f.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", f.describe(), errdefs.ErrNotFound)
		}
		return fmt.Errorf("%s: %w", f.describe(), err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	gz, err := isGzip(br)
	if err != nil {
		return fmt.Errorf("%s: %w", f.describe(), err)
	}
	var tr io.Reader = br
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: not a valid gzip stream: %v: %w", f.describe(), err, errdefs.ErrInvalidArgument)
		}
		defer zr.Close()
		tr = zr
	}
	if _, err := tar.NewReader(tr).Next(); err != nil && err != io.EOF {
		return fmt.Errorf("%s: not a tar archive: %v: %w", f.describe(), err, errdefs.ErrInvalidArgument)
	}
	return nil
}

func isGzip(br *bufio.Reader) (bool, error) {
	head, err := br.Peek(len(gzipMagic))
	if err != nil && err != io.EOF {
		return false, err
	}
	return bytes.Equal(head, gzipMagic), nil
}

// mediaType is the layer media type of the file, as it is.
func (f fileSource) mediaType() (string, error) {
	r, err := os.Open(f.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.describe(), err)
	}
	defer r.Close()
	gz, err := isGzip(bufio.NewReader(r))
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.describe(), err)
	}
	if gz {
		return ocispec.MediaTypeImageLayerGzip, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// dirSource packs a directory.
type dirSource struct{ dir string }

func (d dirSource) describe() string { return fmt.Sprintf("layer directory %q", d.dir) }

func (d dirSource) check() error {
	// Walk once without reading file contents, so that an unreadable
	// directory or an unsupported file type is refused up front.
	return d.walk(func(string, fs.FileInfo, string) error { return nil })
}

// walk calls fn in lexical order for every entry below the directory, with
// its slash-separated name relative to the directory.
func (d dirSource) walk(fn func(name string, fi fs.FileInfo, full string) error) error {
	return filepath.WalkDir(d.dir, func(full string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", d.describe(), err)
		}
		rel, err := filepath.Rel(d.dir, full)
		if err != nil {
			return fmt.Errorf("%s: %w", d.describe(), err)
		}
		if rel == "." {
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return fmt.Errorf("%s: %w", d.describe(), err)
		}
		switch m := fi.Mode(); {
		case m.IsDir(), m.IsRegular(), m&fs.ModeSymlink != 0:
		default:
			return fmt.Errorf("%s: %q is a %v, not a file, directory or link: %w",
				d.describe(), filepath.ToSlash(rel), m.Type(), errdefs.ErrInvalidArgument)
		}
		return fn(filepath.ToSlash(rel), fi, full)
	})
}

func (d dirSource) writeTar(w io.Writer, created time.Time) error {
	tw := tar.NewWriter(w)
	err := d.walk(func(name string, fi fs.FileInfo, full string) error {
		hdr := &tar.Header{Name: name, ModTime: created, Mode: 0o644}
		switch m := fi.Mode(); {
		case m.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(full)
			if err != nil {
				return fmt.Errorf("%s: %w", d.describe(), err)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, filepath.ToSlash(target), 0o777
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
			if m&0o111 != 0 {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %s: %w", d.describe(), name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		return copyFile(tw, full, hdr.Size, d.describe()+": "+name)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// copyFile copies exactly size bytes of a file: a file that changed size
// while it was packed is an error, not a corrupt layer.
func copyFile(w io.Writer, path string, size int64, what string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("%s: changed while it was packed: %w", what, err)
	}
	return nil
}

// writeTarEntry writes one regular file or directory with the fixed
// metadata of generated layers.
func writeTarEntry(tw *tar.Writer, name string, size int64, created time.Time) error {
	hdr := &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: created, Typeflag: tar.TypeReg}
	if strings.HasSuffix(name, "/") {
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
	}
	return tw.WriteHeader(hdr)
}
