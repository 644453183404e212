package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
)

// loadConflictHint ends the error of an archive image whose name and
// version are installed with another digest.
const loadConflictHint = "the archive holds another image of that name and version; remove the installed one first"

// sourceFile is the Source of an image installed from an archive.
const sourceFile = "file"

// loadLimits bound the archives LoadFile accepts; zero fields take the
// archive package's defaults (100000 entries, 4 MiB per JSON document,
// 1 TiB in all).
var loadLimits = archive.Limits{}

// maxSpool bounds the bytes Load spools from its reader.
var maxSpool int64 = archive.DefaultMaxTotal

// LoadFile installs the archive at path on this host (Install -Path): a tar
// as Save writes it (an OCI image layout that is also a `docker save`
// archive), or the same compressed with gzip.
//
// Every blob is verified against its digest while it is ingested, and
// committed only once all are verified (see archive.Read); a bad archive is
// refused with InvalidArgument naming the entry, and changes nothing. Then,
// parents first, each image's record and its ref repository:version are
// written in one transaction per image. The record comes from the manifest
// annotations (title, version, vendor, description, created, and
// base.name/base.digest for the parent; no base means a base OS image) and
// from the config (os.version); its Source is "file". The checks come
// before any record is written: an image whose parent is neither in the
// archive nor installed is FailedPrecondition naming the parent, a name and
// version installed with another digest is Conflict, and the blobs the
// archive brought are then collected. Images already installed are kept as
// they are. The result lists every image of the archive, parents first. A
// missing file is NotFound.
func (p *Provider) LoadFile(ctx context.Context, path string) (api.LoadResult, error) {
	if p.isClosing() {
		return api.LoadResult{}, errClosed
	}
	path = strings.TrimSpace(path)
	if path == "" {
		return api.LoadResult{}, fmt.Errorf("install from a file: a path is required: %w", errdefs.ErrInvalidArgument)
	}
	return p.loadFile(ctx, path, path)
}

// Load installs an archive read from r, as LoadFile does. The archive is
// spooled to a file under the root first (an archive is read in several
// passes), at most 1 TiB (else TooLarge), and the file is removed before
// Load returns.
func (p *Provider) Load(ctx context.Context, r io.Reader) (api.LoadResult, error) {
	if p.isClosing() {
		return api.LoadResult{}, errClosed
	}
	spoolDir := filepath.Join(p.root, tmpDir)
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		return api.LoadResult{}, fmt.Errorf("spool directory: %w", err)
	}
	f, err := os.CreateTemp(spoolDir, "load-*.tar")
	if err != nil {
		return api.LoadResult{}, fmt.Errorf("spool file: %w", err)
	}
	defer func() {
		f.Close()
		if err := os.Remove(f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.log.WithError(err).WithField("path", f.Name()).Warn("spool file not removed")
		}
	}()
	buf := p.buffer()
	n, err := io.CopyBuffer(f, io.LimitReader(ctxReader{ctx: ctx, r: r}, maxSpool+1), *buf)
	p.releaseBuffer(buf)
	if err != nil {
		return api.LoadResult{}, fmt.Errorf("archive: read after %d bytes: %w", n, err)
	}
	if n > maxSpool {
		return api.LoadResult{}, fmt.Errorf("archive: more than %d bytes: %w", maxSpool, errdefs.ErrTooLarge)
	}
	if err := f.Close(); err != nil {
		return api.LoadResult{}, fmt.Errorf("spool file: %w", err)
	}
	return p.loadFile(ctx, f.Name(), "archive")
}

// loadFile reads the archive at path; label names it in errors.
func (p *Provider) loadFile(ctx context.Context, path, label string) (api.LoadResult, error) {
	spoolDir := filepath.Join(p.root, tmpDir)
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		return api.LoadResult{}, fmt.Errorf("spool directory: %w", err)
	}
	res, refused, err := p.ingestArchive(ctx, path, spoolDir)
	if refused {
		// The archive's blobs are committed but no record references
		// them: collect them.
		if _, _, gerr := p.collectGarbage(context.WithoutCancel(ctx)); gerr != nil {
			p.log.WithError(gerr).Warn("garbage collection after a refused archive failed")
		}
	}
	if err != nil {
		return api.LoadResult{}, fmt.Errorf("install from %s: %w", label, err)
	}
	return res, nil
}

// ingestArchive reads the archive and writes the records. Garbage
// collection waits from the first blob committed to the last record
// written; refused reports that blobs may have been committed for records
// that were not written.
func (p *Provider) ingestArchive(ctx context.Context, path, spoolDir string) (api.LoadResult, bool, error) {
	p.gcMu.RLock()
	defer p.gcMu.RUnlock()
	contents, err := archive.ReadFile(ctx, path, spoolDir, p.cs, loadLimits)
	if err != nil {
		return api.LoadResult{}, false, err
	}
	plan, err := p.planLoad(ctx, contents)
	if err != nil {
		return api.LoadResult{}, true, err
	}
	var out []api.Image
	for _, lr := range plan {
		var img api.Image
		err := p.db.Update(ctx, func(tx *bolt.Tx) error {
			rec := lr.rec
			if existing, ok, err := getImage(tx, rec.Digest); err != nil {
				return err
			} else if ok {
				rec = existing
			} else {
				if rec.Parent != nil {
					if _, ok, err := getImage(tx, digest.Digest(rec.Parent.Digest)); err != nil {
						return err
					} else if !ok {
						return fmt.Errorf("image %s: its parent %s %s was removed: %w",
							rec.label(), rec.Parent.Name, rec.Parent.Version, errdefs.ErrFailedPrecondition)
					}
				}
				recs, err := listImages(tx)
				if err != nil {
					return err
				}
				if old, ok := sameImageName(recs, rec.Repository, rec.Version); ok {
					return conflictError(old, loadConflictHint)
				}
				if err := putImage(tx, rec); err != nil {
					return err
				}
			}
			refs, err := listRefs(tx)
			if err != nil {
				return err
			}
			img = rec.image(refs[rec.Digest])
			return nil
		})
		if err != nil {
			return api.LoadResult{}, true, fmt.Errorf("image %s: record: %w", lr.rec.label(), err)
		}
		if !lr.installed {
			p.log.WithField("image", lr.rec.label()).WithField("digest", lr.rec.Digest).Info("image installed from an archive")
		}
		out = append(out, img)
	}
	return api.LoadResult{Images: out}, false, nil
}

// loadRecord is an image of an archive, as it will be recorded.
type loadRecord struct {
	rec imageRecord
	// installed reports that the image is installed already.
	installed bool
}

// planLoad turns the images of an archive into records, parents first, and
// checks them against the installed images before anything is written.
func (p *Provider) planLoad(ctx context.Context, c archive.Contents) ([]loadRecord, error) {
	var recs []imageRecord
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		recs, err = listImages(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	installed := map[digest.Digest]imageRecord{}
	for _, r := range recs {
		installed[r.Digest] = r
	}
	now := time.Now().UTC()
	var plan []loadRecord
	inArchive := map[digest.Digest]imageRecord{}
	names := map[string]digest.Digest{}
	for _, img := range c.Images {
		if r, ok := installed[img.Manifest.Digest]; ok {
			plan = append(plan, loadRecord{rec: r, installed: true})
			inArchive[r.Digest] = r
			continue
		}
		rec, base, err := archiveRecord(img, c, now)
		if err != nil {
			return nil, err
		}
		if base != nil {
			parent, ok := findBase(*base, inArchive, recs)
			if !ok {
				return nil, fmt.Errorf("image %s: its parent %s is neither in the archive nor installed: %w",
					rec.label(), baseLabel(*base), errdefs.ErrFailedPrecondition)
			}
			rec.Parent = &api.ParentRef{Name: parent.Name, Version: parent.Version, Digest: parent.Digest.String(), Publisher: parent.Publisher}
		}
		key := rec.Repository + ":" + rec.Version
		if d, ok := names[key]; ok && d != rec.Digest {
			return nil, fmt.Errorf("image %s: two images of the archive are %s: %w", rec.label(), key, errdefs.ErrInvalidArgument)
		}
		names[key] = rec.Digest
		if old, ok := sameImageName(recs, rec.Repository, rec.Version); ok {
			return nil, conflictError(old, loadConflictHint)
		}
		for _, d := range rec.blobs() {
			if _, err := p.cs.Info(ctx, d.Digest); err != nil {
				return nil, fmt.Errorf("image %s: blob %s is not in the archive nor in the store: %v: %w",
					rec.label(), d.Digest, err, errdefs.ErrFailedPrecondition)
			}
		}
		plan = append(plan, loadRecord{rec: rec})
		inArchive[rec.Digest] = rec
	}
	return plan, nil
}

// archiveRecord derives the record of an archive image from its manifest
// annotations and its config; base is the parent the annotations name, nil
// for a base OS image.
func archiveRecord(img archive.Image, c archive.Contents, installed time.Time) (imageRecord, *api.ParentRef, error) {
	label := img.RefName
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
	repo, tag, _ := find.SplitReference(img.RefName)
	name := strings.TrimSpace(a[catalog.AnnotationTitle])
	if repo == "" {
		repo = strings.ToLower(name)
	}
	if name == "" {
		name = repo
	}
	version := strings.TrimSpace(a[catalog.AnnotationVersion])
	if version == "" {
		version = tag
	}
	if repo == "" || version == "" {
		return imageRecord{}, nil, fmt.Errorf("image %s: no repository or version: it needs a ref name \"repository:version\" or title and version annotations: %w",
			label, errdefs.ErrInvalidArgument)
	}
	if err := catalog.ValidateName(repo); err != nil {
		return imageRecord{}, nil, fmt.Errorf("image %s: %w", label, err)
	}
	if err := catalog.ValidateTag(version); err != nil || version == latestTag {
		return imageRecord{}, nil, fmt.Errorf("image %s: version %q is not a valid tag: %w", label, version, errdefs.ErrInvalidArgument)
	}
	rec := imageRecord{
		Name:        name,
		Repository:  repo,
		Publisher:   strings.TrimSpace(a[catalog.AnnotationVendor]),
		Version:     version,
		Description: strings.TrimSpace(a[catalog.AnnotationDescription]),
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
	if cr, ok := a[catalog.AnnotationCreated]; ok {
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
	baseName, baseDigest := strings.TrimSpace(a[catalog.AnnotationBaseName]), strings.TrimSpace(a[catalog.AnnotationBaseDigest])
	rec.IsOSImage = baseName == "" && baseDigest == ""
	if rec.IsOSImage {
		return rec, nil, nil
	}
	bRepo, bTag, bDigest := find.SplitReference(baseName)
	if baseDigest == "" {
		baseDigest = bDigest
	}
	return rec, &api.ParentRef{Name: bRepo, Version: bTag, Digest: baseDigest}, nil
}

// findBase finds the parent that base names: by digest when it has one,
// else by repository (or name) and version; first among the images of the
// archive, then among the installed ones.
func findBase(base api.ParentRef, inArchive map[digest.Digest]imageRecord, recs []imageRecord) (imageRecord, bool) {
	if base.Digest != "" {
		if r, ok := inArchive[digest.Digest(base.Digest)]; ok {
			return r, true
		}
		for _, r := range recs {
			if r.Digest.String() == base.Digest {
				return r, true
			}
		}
		return imageRecord{}, false
	}
	if base.Name == "" {
		return imageRecord{}, false
	}
	match := func(r *imageRecord) bool { return sameName(base.Name, r) && sameVersion(base.Version, r.Version) }
	for _, r := range inArchive {
		if match(&r) {
			return r, true
		}
	}
	for i := range recs {
		if match(&recs[i]) {
			return recs[i], true
		}
	}
	return imageRecord{}, false
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
