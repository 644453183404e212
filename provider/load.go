package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/store/content"
)

// loadConflictHint ends the error of an archive image whose name and
// version are installed with another digest.
const loadConflictHint = "the archive holds another image of that name and version; remove the installed one first"

// sourceFile is the Source of an image installed from an archive.
const sourceFile = "file"

// loadLimits bound the archives that Load and LoadFile accept; zero fields
// take the archive package's defaults (100000 entries, 4 MiB per JSON
// document, 1 TiB in all).
var loadLimits = archive.Limits{}

// DefaultSpoolMaxSize is Config.SpoolMaxSize when it is not set.
const DefaultSpoolMaxSize = 64 << 30

// OpenArchive opens the archive at path with the daemon's own rights, for
// LoadFile: read-only, without following a symbolic link in the last
// element (InvalidArgument) and without waiting on a FIFO. Anything but a
// regular file is InvalidArgument, and a missing file and one the daemon
// may not read are one NotFound: "cannot read PATH: no such file, or not
// readable by you". The caller closes the file. A server opening the path
// of a client opens it with the client's rights instead (hostfs.AsUser).
func OpenArchive(path string) (*os.File, error) {
	return hostfs.OS().Open(path)
}

// LoadFile installs the archive f (Install -Path): a tar as Save writes it
// (an OCI image layout that is also a `docker save` archive), an OCI image
// layout or a docker archive as the field's tools write them (see
// archive.Prepare), or any of them compressed with gzip. The caller opened f, a regular file (else
// InvalidArgument), and closes it; label names the archive in errors and
// logs, e.g. its path. Nothing is opened by name and no lock is held while
// f is read.
//
// Every blob is verified against its digest while it is ingested, and
// every layer against the format its media type names (see
// archive.Prepare); a bad archive is refused with InvalidArgument naming
// the entry, and changes nothing. A gzip archive is first decompressed
// into <root>/tmp as Load spools a stream. Then the blobs are committed
// under a lease against garbage collection, and one transaction writes the
// record and the ref repository:version of every image, parents first. The
// record comes from the image's name in the archive (its repository
// without the registry's host, and its tag as the version), the manifest
// annotations (title, version, vendor, description, created, and
// base.name/base.digest for the parent; no base means a base OS image),
// checked as Commit checks its request (a title,
// publisher or description that Commit would refuse is InvalidArgument),
// and from the config (os.version); its Source is "file". In the same
// transaction, by key lookups: an image whose parent is neither in the
// archive nor installed is FailedPrecondition naming the parent, and a name
// and version installed with another digest is Conflict. Images already
// installed are kept as they are. When ctx ends, or a check refuses the
// archive, the transaction is rolled back: no record is written, and the
// blobs the archive brought are collected. ENOSPC and EDQUOT are
// InsufficientStorage. The result lists every image of the archive,
// parents first.
func (p *Provider) LoadFile(ctx context.Context, f *os.File, label string) (api.LoadResult, error) {
	if p.isClosing() {
		return api.LoadResult{}, errClosed
	}
	if f == nil {
		return api.LoadResult{}, fmt.Errorf("install from a file: no file: %w", errdefs.ErrInvalidArgument)
	}
	label = strings.TrimSpace(label)
	if label == "" {
		label = f.Name()
	}
	res, err := p.loadFile(ctx, f, label)
	if err != nil {
		return api.LoadResult{}, fmt.Errorf("install from %s: %w", label, err)
	}
	return res, nil
}

func (p *Provider) loadFile(ctx context.Context, f *os.File, label string) (api.LoadResult, error) {
	fi, err := f.Stat()
	if err != nil {
		return api.LoadResult{}, err
	}
	if !fi.Mode().IsRegular() {
		return api.LoadResult{}, fmt.Errorf("not a regular file: %w", errdefs.ErrInvalidArgument)
	}
	if archive.IsGzip(f) {
		return p.loadStream(ctx, io.NewSectionReader(f, 0, fi.Size()), label)
	}
	// A file copied from another host is seldom in the page cache: the
	// FileReaderAt reads what the cache lacks straight from disk.
	ra := content.NewFileReaderAt(f, fi.Size())
	defer ra.Close()
	return p.loadArchive(ctx, ra, fi.Size(), label)
}

// Load installs an archive read from r, as LoadFile does. The archive is
// spooled to a file under <root>/tmp first (an archive is read in several
// passes), decompressed when it is gzip, and the file is removed before
// Load returns. The spool is checked as it grows (see archive.Spool): a
// stream that cannot be an archive, a gzip bomb of zeros among them, is
// refused with InvalidArgument at its first bytes; more than
// Config.SpoolMaxSize bytes is TooLarge, and a spool that would leave less
// than the reserve free on the root's filesystem is InsufficientStorage.
// No lock is held while r is read.
func (p *Provider) Load(ctx context.Context, r io.Reader) (api.LoadResult, error) {
	if p.isClosing() {
		return api.LoadResult{}, errClosed
	}
	res, err := p.loadStream(ctx, r, "archive")
	if err != nil {
		return api.LoadResult{}, fmt.Errorf("install from archive: %w", err)
	}
	return res, nil
}

// loadStream spools the archive of r and loads the spool.
func (p *Provider) loadStream(ctx context.Context, r io.Reader, label string) (api.LoadResult, error) {
	f, size, err := p.spool(ctx, r, label)
	if err != nil {
		return api.LoadResult{}, err
	}
	defer p.removeSpool(f)
	return p.loadArchive(ctx, f, size, label)
}

// spool writes the archive of r, decompressed, into a new file of
// <root>/tmp, which the caller removes with removeSpool.
func (p *Provider) spool(ctx context.Context, r io.Reader, label string) (*os.File, int64, error) {
	dir := filepath.Join(p.root, tmpDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, storageError(fmt.Errorf("spool directory: %w", err), p.root, "the spool of "+label)
	}
	f, err := os.CreateTemp(dir, "load-*.tar")
	if err != nil {
		return nil, 0, storageError(fmt.Errorf("spool file: %w", err), p.root, "the spool of "+label)
	}
	w := &spoolWriter{f: f, max: p.spoolMaxSize, guard: p.newSpaceGuard("the spool of " + label)}
	if err := w.guard.check(0); err != nil {
		p.removeSpool(f)
		return nil, 0, err
	}
	n, err := archive.Spool(ctx, w, r, loadLimits)
	if err != nil {
		p.removeSpool(f)
		return nil, 0, storageError(err, p.root, "the spool of "+label)
	}
	return f, n, nil
}

// removeSpool closes and deletes a spool file.
func (p *Provider) removeSpool(f *os.File) {
	f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.WithError(err).WithField("path", f.Name()).Warn("spool file not removed")
	}
}

// spoolWriter writes a spool file, refusing more than max bytes in all and
// the writes that would leave less than the reserve free.
type spoolWriter struct {
	f     *os.File
	n     int64
	max   int64
	guard *spaceGuard
}

func (w *spoolWriter) Write(b []byte) (int, error) {
	if w.n+int64(len(b)) > w.max {
		return 0, fmt.Errorf("the archive is more than the spool limit of %s: %w", formatBytes(uint64(w.max)), errdefs.ErrTooLarge)
	}
	if err := w.guard.check(w.n + int64(len(b))); err != nil {
		return 0, err
	}
	n, err := w.f.Write(b)
	w.n += int64(n)
	return n, err
}

// loadArchive loads the archive held by ra (size bytes): prepare its blobs,
// lease them, commit them, then write the records in one transaction. No
// lock of the store is held while ra is read: the lease, taken once the
// blobs are verified and before the first is committed, keeps garbage
// collection away from them until the records reference them.
func (p *Provider) loadArchive(ctx context.Context, ra io.ReaderAt, size int64, label string) (api.LoadResult, error) {
	pr, err := archive.Prepare(ctx, ra, size, p.cs, loadLimits)
	if err != nil {
		return api.LoadResult{}, storageError(err, p.root, "the blobs of "+label)
	}
	plan, err := p.planLoad(ctx, pr.Contents)
	if err != nil {
		pr.Abort(ctx)
		return api.LoadResult{}, err
	}
	lease, err := p.lease(ctx, "load", pr.Blobs())
	if err != nil {
		pr.Abort(ctx)
		return api.LoadResult{}, storageError(err, p.root, "the records of "+label)
	}
	if err := pr.Commit(ctx); err != nil {
		lease.release(ctx, true)
		return api.LoadResult{}, storageError(err, p.root, "the blobs of "+label)
	}
	res, err := p.recordLoad(ctx, plan)
	// Refused or cancelled, the archive's blobs are committed and no
	// record references them: the release collects them.
	lease.release(ctx, err != nil)
	if err != nil {
		return api.LoadResult{}, storageError(err, p.root, "the records of "+label)
	}
	for _, lr := range plan {
		if !lr.installed {
			p.log.WithField("image", lr.rec.label()).WithField("digest", lr.rec.Digest).WithField("archive", label).
				Info("image installed from an archive")
		}
	}
	return res, nil
}

// loadRecord is an image of an archive, as it will be recorded.
type loadRecord struct {
	rec imageRecord
	// base is the parent that the annotations name; nil for a base OS
	// image.
	base *api.ParentRef
	// installed reports that the image is installed already; set by
	// recordLoad.
	installed bool
}

// planLoad turns the images of an archive into records, parents first,
// with the checks that need no installed image.
func (p *Provider) planLoad(ctx context.Context, c archive.Contents) ([]loadRecord, error) {
	now := time.Now().UTC()
	plan := make([]loadRecord, 0, len(c.Images))
	names := map[string]digest.Digest{}
	for _, img := range c.Images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, base, err := archiveRecord(img, c, now)
		if err != nil {
			return nil, err
		}
		key := rec.Repository + ":" + versionKey(rec.Version)
		if d, ok := names[key]; ok && d != rec.Digest {
			return nil, fmt.Errorf("image %s: two images of the archive are %s:%s: %w", rec.label(), rec.Repository, rec.Version, errdefs.ErrInvalidArgument)
		}
		names[key] = rec.Digest
		plan = append(plan, loadRecord{rec: rec, base: base})
	}
	tp, err := p.filePolicy(ctx)
	if err != nil || tp.mode == api.SignaturesOff {
		return plan, err
	}
	for i, img := range c.Images {
		if err := p.checkArchiveSignature(ctx, tp, img, c, &plan[i].rec); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// recordLoad writes the records of plan in one transaction, checking each
// image against the installed ones and those of the archive before it
// with an index built once: a cost linear in the installed images and the
// archive's. The images installed already are kept; the others must have
// their parent, their blobs, and a name and version of their own. ctx is
// checked for each image: a cancel rolls everything back.
func (p *Provider) recordLoad(ctx context.Context, plan []loadRecord) (api.LoadResult, error) {
	// The blobs are leased and committed; each check is a stat.
	for _, lr := range plan {
		for _, d := range lr.rec.blobs() {
			if _, err := p.cs.Info(ctx, d.Digest); err != nil {
				return api.LoadResult{}, fmt.Errorf("image %s: blob %s is not in the archive nor in the store: %v: %w",
					lr.rec.label(), d.Digest, err, errdefs.ErrFailedPrecondition)
			}
		}
	}
	out := make([]api.Image, 0, len(plan))
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		ix := newImageIndex(recs)
		for i := range plan {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := recordOne(tx, ix, &plan[i]); err != nil {
				return err
			}
		}
		refs, err := listRefs(tx)
		if err != nil {
			return err
		}
		for _, lr := range plan {
			out = append(out, lr.rec.image(refs[lr.rec.Digest]))
		}
		return nil
	})
	if err != nil {
		return api.LoadResult{}, err
	}
	return api.LoadResult{Images: out}, nil
}

// recordOne checks and writes the record of one image of an archive, and
// adds it to ix, in the transaction of recordLoad.
func recordOne(tx *bolt.Tx, ix *imageIndex, lr *loadRecord) error {
	if existing, ok := ix.byDigest[lr.rec.Digest]; ok {
		lr.rec, lr.installed = existing, true
		ix.fromArchive[existing.Digest] = true
		return nil
	}
	rec := &lr.rec
	if lr.base != nil {
		parent, ok := ix.findBase(*lr.base)
		if !ok {
			return fmt.Errorf("image %s: its parent %s is neither in the archive nor installed: %w",
				rec.label(), baseLabel(*lr.base), errdefs.ErrFailedPrecondition)
		}
		rec.Parent = &api.ParentRef{Name: parent.Name, Version: parent.Version, Digest: parent.Digest.String(), Publisher: parent.Publisher}
	}
	if old, ok := ix.sameName(rec.Repository, rec.Version); ok {
		return conflictError(old, loadConflictHint)
	}
	if err := putImage(tx, *rec); err != nil {
		return fmt.Errorf("image %s: record: %w", rec.label(), err)
	}
	ix.add(*rec)
	ix.fromArchive[rec.Digest] = true
	return nil
}

// archiveRecord derives the record of an archive image from its manifest
// annotations and its config; base is the parent the annotations name, nil
// for a base OS image.
func archiveRecord(img archive.Image, c archive.Contents, installed time.Time) (imageRecord, *api.ParentRef, error) {
	label := cutName(img.RefName)
	if label == "" {
		label = img.Manifest.Digest.String()
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(c.Manifests[img.Manifest.Digest], &m); err != nil {
		return imageRecord{}, nil, fmt.Errorf("image %s: manifest: %v: %w", label, err, errdefs.ErrInvalidArgument)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(c.Configs[img.Config.Digest], &cfg); err != nil {
		return imageRecord{}, nil, fmt.Errorf("image %s: config: %v: %w", label, err, errdefs.ErrInvalidArgument)
	}
	a := m.Annotations
	repo, tag := imageName(img)
	name := strings.TrimSpace(a[find.AnnotationTitle])
	if repo == "" {
		repo = strings.ToLower(name)
	}
	if name == "" {
		name = repo
	}
	version := strings.TrimSpace(a[find.AnnotationVersion])
	if version == "" {
		version = tag
	}
	if repo == "" || version == "" {
		return imageRecord{}, nil, fmt.Errorf("image %s: no repository or version: it needs a ref name \"repository:version\" or title and version annotations: %w",
			label, errdefs.ErrInvalidArgument)
	}
	if err := model.ValidateName(repo); err != nil {
		return imageRecord{}, nil, fmt.Errorf("image %s: %w", label, err)
	}
	if err := model.ValidateTag(version); err != nil || version == latestTag {
		return imageRecord{}, nil, fmt.Errorf("image %s: version %q is not a valid tag: %w", label, cutName(version), errdefs.ErrInvalidArgument)
	}
	// What Get-ContainerImage shows is checked as Commit checks it: no
	// escape sequence or other control character, no unbounded length.
	publisher := strings.TrimSpace(a[find.AnnotationVendor])
	description := strings.TrimSpace(a[find.AnnotationDescription])
	for _, err := range []error{checkImageName(name), checkPublisher(publisher), checkDescription(description), checkOSVersion(cfg.OSVersion)} {
		if err != nil {
			return imageRecord{}, nil, fmt.Errorf("image %s: %w", label, err)
		}
	}
	rec := imageRecord{
		Name:        name,
		Repository:  repo,
		Publisher:   publisher,
		Version:     version,
		Description: description,
		Installed:   installed,
		Digest:      img.Manifest.Digest,
		Source:      sourceFile,
		OSVersion:   cfg.OSVersion,
		Manifest:    plainDescriptor(img.Manifest),
		Config:      trimDescriptor(img.Config),
	}
	for _, l := range img.Layers {
		rec.Layers = append(rec.Layers, trimDescriptor(l))
	}
	if cr, ok := a[find.AnnotationCreated]; ok {
		if t, err := time.Parse(time.RFC3339, cr); err == nil {
			rec.Created = t.UTC()
		}
	}
	if rec.Created.IsZero() && cfg.Created != nil {
		rec.Created = cfg.Created.UTC()
	}
	rec.Size = rec.Manifest.Size + rec.Config.Size
	for _, l := range rec.Layers {
		rec.Size += l.Size
	}
	baseName, baseDigest := strings.TrimSpace(a[find.AnnotationBaseName]), strings.TrimSpace(a[find.AnnotationBaseDigest])
	rec.IsOSImage = baseName == "" && baseDigest == ""
	if rec.IsOSImage {
		return rec, nil, nil
	}
	bRepo, bTag, bDigest := find.SplitReference(baseName)
	if n, ok := archive.ParseName(baseName); ok {
		// A fully qualified base ("127.0.0.1:5000/windowsservercore:…")
		// names the repository without its registry, as records do.
		bRepo, bTag = n.Repository, n.Tag
	}
	if baseDigest == "" {
		baseDigest = bDigest
	}
	return rec, &api.ParentRef{Name: bRepo, Version: bTag, Digest: baseDigest}, nil
}

// imageName is the repository and tag of an archive image, the registry's
// host left out: "127.0.0.1:5000/microsoft/iis:1.0.0.0" and
// "docker.io/library/nginx:1.25" are microsoft/iis and nginx, as an image
// installed from a source is named. A ref name that is not an image name
// is split as it is, for the checks to name it.
func imageName(img archive.Image) (repo, tag string) {
	if n, ok := archive.ParseName(img.RefName); ok {
		repo, tag = n.Repository, n.Tag
	} else {
		repo, tag, _ = find.SplitReference(img.RefName)
	}
	if tag == "" {
		tag = img.Tag
	}
	return repo, tag
}

// maxOSVersionLength bounds the os.version of an image config that the
// records keep.
const maxOSVersionLength = 128

// checkOSVersion refuses, with InvalidArgument, an os.version that
// Get-ContainerImage could not show as it is.
func checkOSVersion(v string) error {
	if len(v) > maxOSVersionLength || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("config os.version %q: more than %d bytes, or a control character: %w", cutName(v), maxOSVersionLength, errdefs.ErrInvalidArgument)
	}
	return nil
}

func baseLabel(b api.ParentRef) string {
	s := b.Name
	if b.Version != "" {
		s += ":" + b.Version
	}
	if b.Digest != "" {
		s = strings.TrimSpace(s + " (" + b.Digest + ")")
	}
	return s
}
