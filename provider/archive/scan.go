package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// blobEntry is a blob to ingest: where its data sits in the archive, or its
// bytes, for a manifest that Prepare made.
type blobEntry struct {
	name   string // the archive entry, for messages; empty for data
	digest digest.Digest
	offset int64 // of the data, from the start of the archive
	size   int64
	data   []byte // the bytes of a made manifest; nil for an entry
	// format is what the bytes are when descriptors declare the blob a
	// layer; notLayer otherwise.
	format layerFormat
}

// member is a regular file or a symbolic link of the archive.
type member struct {
	raw    string // the name as the header gives it
	name   string // canonical
	offset int64  // of the data, from the start of the archive
	size   int64
	// link is, for a symbolic link, the canonical name of its target.
	link string
}

// scanned is what the scan of the tar headers found.
type scanned struct {
	members map[string]*member // by canonical name
	files   map[string][]byte  // oci-layout, index.json, manifest.json, repositories
}

func invalidEntry(name, format string, args ...any) error {
	return fmt.Errorf("archive entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// scan reads every tar header, checking names, types and limits, and keeps
// the small JSON files and the position of every other file.
func scan(ctx context.Context, ra io.ReaderAt, size int64, limits Limits) (*scanned, error) {
	s := &scanned{members: map[string]*member{}, files: map[string][]byte{}}
	// The section reader is also a Seeker: tar skips the data of each entry
	// by seeking, and its position after Next is where the data starts.
	sr := io.NewSectionReader(ra, 0, size)
	tr := tar.NewReader(sr)
	seen := map[string]bool{}
	for count := 1; ; count++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if hdr != nil {
				return nil, invalidEntry(hdr.Name, "%v", err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("archive: truncated after %d entries: %w", count-1, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("archive: entry %d: %v: %w", count, err, errdefs.ErrInvalidArgument)
		}
		if count > limits.MaxEntries {
			return nil, fmt.Errorf("archive: more than %d entries: %w", limits.MaxEntries, errdefs.ErrInvalidArgument)
		}
		name, kind, err := checkMember(hdr, seen, limits)
		if err != nil {
			return nil, err
		}
		offset, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("archive entry %q: %w", hdr.Name, err)
		}
		if hdr.Size < 0 || hdr.Size > size-offset {
			return nil, invalidEntry(hdr.Name, "%d bytes of data run past the end of the archive (truncated)", hdr.Size)
		}
		switch kind {
		case kindDir:
		case kindLayoutFile:
			b := make([]byte, hdr.Size)
			if _, err := io.ReadFull(tr, b); err != nil {
				return nil, invalidEntry(hdr.Name, "truncated: %v", err)
			}
			s.files[name] = b
		case kindLink:
			s.members[name] = &member{raw: hdr.Name, name: name, link: linkTarget(name, hdr.Linkname)}
		default:
			s.members[name] = &member{raw: hdr.Name, name: name, offset: offset, size: hdr.Size}
		}
	}
	// After the end-of-archive blocks only zero padding may follow.
	pos, err := sr.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := checkZeros(ctx, io.NewSectionReader(ra, pos, size-pos)); err != nil {
		return nil, err
	}
	return s, nil
}

// memberKind is what an entry of an archive is.
type memberKind int

const (
	kindDir        memberKind = iota
	kindLayoutFile            // oci-layout, index.json, manifest.json, repositories
	kindBlob                  // blobs/<alg>/<hex>
	kindDocker                // a file of a docker archive: <hex>.tar, sha256:<hex>, <id>/layer.tar …
	kindLink                  // a symbolic link of a docker archive's legacy layer directory
)

var (
	// dockerFileRE is the name of a file at the root of a docker archive,
	// a config or a layer named by its digest: <hex>.json (docker, skopeo),
	// <hex>.tar (skopeo, crane), <hex>.tar.gz, <hex>.tar.zst, sha256:<hex>
	// (crane).
	dockerFileRE = regexp.MustCompile(`^(sha256:)?[a-f0-9]{64}(\.json|\.tar|\.tar\.gz|\.tgz|\.tar\.zst)?$`)
	// legacyDirRE is a legacy layer directory of a docker archive, named by
	// the layer's v1 id.
	legacyDirRE = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// legacyFiles are the files of a legacy layer directory; only layer.tar
// (or layer, skopeo's symbolic link) holds data that an image uses.
var legacyFiles = map[string]bool{"layer.tar": true, "layer": true, "json": true, "VERSION": true}

// isDockerName reports whether name may be a file of a docker archive.
func isDockerName(name string) bool {
	dir, file := path.Split(name)
	if dir == "" {
		return dockerFileRE.MatchString(file)
	}
	return legacyDirRE.MatchString(strings.TrimSuffix(dir, "/")) && legacyFiles[file]
}

// isLegacyMetadata reports whether name is a file of a legacy layer
// directory that no image refers to: docker's v1 config and version.
func isLegacyMetadata(name string) bool {
	dir, file := path.Split(name)
	return dir != "" && (file == "json" || file == "VERSION")
}

func isLayoutFile(name string) bool {
	switch name {
	case ociLayoutFile, indexFile, dockerManifest, dockerRepos:
		return true
	}
	return false
}

// checkMember checks the name and type of an entry, records it in seen
// and returns its canonical name (no "./" prefix, no trailing slash, "."
// for the root) and its kind. Spool and Prepare's scan both apply it.
func checkMember(hdr *tar.Header, seen map[string]bool, limits Limits) (string, memberKind, error) {
	name, err := entryName(hdr)
	if err != nil {
		return "", 0, err
	}
	if seen[name] {
		return "", 0, invalidEntry(hdr.Name, "duplicate entry")
	}
	seen[name] = true
	switch hdr.Typeflag {
	case tar.TypeDir:
		if hdr.Size != 0 || !(knownDir(name) || legacyDirRE.MatchString(name)) {
			return "", 0, invalidEntry(hdr.Name, "unexpected directory")
		}
		return name, kindDir, nil
	case tar.TypeSymlink:
		return name, kindLink, checkLink(hdr, name)
	}
	switch {
	case isLayoutFile(name):
		if hdr.Size > limits.MaxJSON {
			return "", 0, invalidEntry(hdr.Name, "%d bytes, over the JSON limit of %d", hdr.Size, limits.MaxJSON)
		}
		return name, kindLayoutFile, nil
	case strings.HasPrefix(name, blobsDir+"/"):
		if _, err := parseBlobPath(name); err != nil {
			return "", 0, err
		}
		return name, kindBlob, nil
	case isDockerName(name):
		return name, kindDocker, nil
	}
	return "", 0, invalidEntry(hdr.Name, "neither part of an OCI image layout nor of a docker archive")
}

// checkLink accepts the one symbolic link that docker archives hold: the
// layer of a legacy layer directory (<id>/layer, <id>/layer.tar), pointing
// at a file of the archive by a relative name that stays inside it.
func checkLink(hdr *tar.Header, name string) error {
	dir, file := path.Split(name)
	if dir == "" || !legacyDirRE.MatchString(strings.TrimSuffix(dir, "/")) || (file != "layer" && file != "layer.tar") {
		return invalidEntry(hdr.Name, "symlink to %q: only regular files and directories are allowed, and the layer links of a docker archive", hdr.Linkname)
	}
	t := hdr.Linkname
	if t == "" || strings.ContainsAny(t, "\\\x00") || strings.HasPrefix(t, "/") || (len(t) >= 2 && t[1] == ':') {
		return invalidEntry(hdr.Name, "symlink to %q: the target must be a relative name inside the archive", t)
	}
	target := linkTarget(name, t)
	if target == ".." || strings.HasPrefix(target, "../") || target == "." {
		return invalidEntry(hdr.Name, "symlink to %q escapes the archive", t)
	}
	if !isDockerName(target) && !strings.HasPrefix(target, blobsDir+"/") {
		return invalidEntry(hdr.Name, "symlink to %q: the target is neither part of an OCI image layout nor of a docker archive", t)
	}
	return nil
}

// linkTarget is the canonical name that the symbolic link name, pointing at
// linkname, names in the archive.
func linkTarget(name, linkname string) string {
	return path.Clean(path.Join(path.Dir(name), linkname))
}

// entryName checks the name and type of an entry and returns its canonical
// name: no "./" prefix, no trailing slash, "." for the root.
func entryName(hdr *tar.Header) (string, error) {
	raw := hdr.Name
	if raw == "" {
		return "", invalidEntry(raw, "empty name")
	}
	if strings.ContainsAny(raw, "\\\x00") {
		return "", invalidEntry(raw, "backslash or NUL in the name")
	}
	if strings.HasPrefix(raw, "/") || (len(raw) >= 2 && raw[1] == ':') {
		return "", invalidEntry(raw, "absolute name")
	}
	for _, el := range strings.Split(raw, "/") {
		if el == ".." {
			return "", invalidEntry(raw, "name escapes the archive (\"..\")")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00', tar.TypeDir, tar.TypeSymlink:
	case tar.TypeLink:
		return "", invalidEntry(raw, "hard link to %q: only regular files and directories are allowed", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return "", invalidEntry(raw, "device or fifo: only regular files and directories are allowed")
	case tar.TypeGNUSparse:
		return "", invalidEntry(raw, "sparse file: only regular files and directories are allowed")
	default:
		return "", invalidEntry(raw, "entry type %q: only regular files and directories are allowed", hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", invalidEntry(raw, "sparse file: only regular files and directories are allowed")
		}
	}
	name := strings.TrimSuffix(strings.TrimPrefix(raw, "./"), "/")
	if name == "" || name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return "", invalidEntry(raw, "not a file name")
		}
		return ".", nil
	}
	if path.Clean(name) != name {
		return "", invalidEntry(raw, "name is not canonical")
	}
	return name, nil
}

// knownDir reports whether name is a directory of an OCI layout.
func knownDir(name string) bool {
	switch name {
	case ".", blobsDir, blobsDir + "/" + string(digest.SHA256), blobsDir + "/" + string(digest.SHA512):
		return true
	}
	return false
}

// checkZeros refuses non-zero bytes after the end of the tar.
func checkZeros(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("archive: data after the end of the tar: %w", errdefs.ErrInvalidArgument)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
