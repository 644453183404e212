package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// SaveFileName is the default file name of a saved image:
// "<Name>-<version with dashes>.tar", e.g. "NanoServer-10-0-10586-0.tar".
// A "/" in the name becomes "_".
func SaveFileName(name, version string) string {
	n := strings.ReplaceAll(strings.TrimSpace(name), "/", "_")
	n = strings.ReplaceAll(n, `\`, "_")
	v := strings.ReplaceAll(strings.TrimSpace(version), ".", "-")
	if v == "" {
		return n + ".tar"
	}
	return n + "-" + v + ".tar"
}

// blobOpen opens one blob of a save.
type blobOpen func(ctx context.Context) (io.ReadCloser, error)

// savePlan is what a save writes: the image asked for, the chain of images
// parents first, and where each blob comes from.
type savePlan struct {
	image  api.Image
	chain  []archive.Image
	blobs  map[digest.Digest]blobOpen
	labels []string // "Name version" of the chain, for the log
	// installed are the images of the chain whose blobs come from the
	// store: the save leases them.
	installed []imageRecord
	// hosts are the registry hosts of the sources, by source name: an
	// image is named host/repository:version in the archive.
	hosts map[string]string
}

func newSavePlan(hosts map[string]string) *savePlan {
	return &savePlan{blobs: map[digest.Digest]blobOpen{}, hosts: hosts}
}

// sourceHosts maps the name of each source to the host (with its port) of
// its registry, "127.0.0.1:5000", as its location names it.
func sourceHosts(tx *bolt.Tx) (map[string]string, error) {
	out := map[string]string{}
	b := meta.GetSourcesBucket(tx)
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var s api.Source
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("source record %s: %w", k, err)
		}
		if u, err := url.Parse(s.Location); err == nil && u.Host != "" {
			out[s.Name] = u.Host
		}
		return nil
	})
	return out, err
}

// registryHost is the host of the registry that an image installed from
// source holds it, empty for an image made here (New-ContainerImage) or
// installed from a file.
func registryHost(hosts map[string]string, source string) string {
	if source == sourceLocal || source == sourceFile {
		return ""
	}
	return hosts[source]
}

// qualifiedName is the name of an installed image with the host of the
// registry it was installed from, "127.0.0.1:5000/nanoserver:10.0.10586.0",
// or without a host ("nanoserver:10.0.10586.0") when no registry holds it:
// what an org.opencontainers.image.base.name that names it says, so that
// a client resolves it where it is.
func (p *Provider) qualifiedName(ctx context.Context, rec imageRecord) string {
	var hosts map[string]string
	if err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		hosts, err = sourceHosts(tx)
		return err
	}); err != nil {
		p.log.WithError(err).Warn("sources not read: the image is named without its registry")
	}
	return archive.QualifiedName(registryHost(hosts, rec.Source), rec.Repository, rec.Version)
}

// open is the archive.BlobOpener of the plan.
func (sp *savePlan) open(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	o, ok := sp.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: not part of the saved images: %w", desc.Digest, errdefs.ErrNotFound)
	}
	return o(ctx)
}

// addInstalled prepends an installed image, whose blobs come from the
// content store.
func (p *Provider) addInstalled(sp *savePlan, rec imageRecord) {
	sp.chain = slices.Insert(sp.chain, 0, archive.Image{
		RefName:    archive.QualifiedName(registryHost(sp.hosts, rec.Source), rec.Repository, rec.Version),
		Manifest:   plainDescriptor(rec.Manifest),
		Config:     rec.Config,
		Layers:     rec.Layers,
		Signatures: rec.Signatures,
	})
	sp.labels = slices.Insert(sp.labels, 0, rec.label())
	sp.installed = append(sp.installed, rec)
	for _, d := range rec.blobs() {
		dgst := d.Digest
		sp.blobs[dgst] = func(ctx context.Context) (io.ReadCloser, error) {
			ra, err := p.cs.ReaderAt(ctx, dgst)
			if err != nil {
				return nil, err
			}
			return readAtCloser{SectionReader: content.NewSectionReader(ra), c: ra}, nil
		}
	}
}

// addFetched prepends an image read from a source, whose manifest was
// fetched and verified and whose other blobs stream from the source.
func (sp *savePlan) addFetched(img *pendingImage) {
	e := img.entry
	sp.chain = slices.Insert(sp.chain, 0, archive.Image{
		RefName:  archive.QualifiedName(registryHost(sp.hosts, e.Source), e.Repository, e.Version),
		Manifest: plainDescriptor(img.manifest),
		Config:   img.config,
		Layers:   img.layers,
	})
	sp.labels = slices.Insert(sp.labels, 0, img.label())
	mb := img.manifestBytes
	sp.blobs[img.manifest.Digest] = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mb)), nil
	}
	src, repo := img.src, e.Repository
	for _, d := range img.blobs() {
		dgst := d.Digest
		if _, ok := sp.blobs[dgst]; ok {
			continue
		}
		sp.blobs[dgst] = func(ctx context.Context) (io.ReadCloser, error) {
			return src.Blob(ctx, repo, dgst, 0)
		}
	}
}

// plainDescriptor is a manifest descriptor without annotations, as
// index.json lists it.
func plainDescriptor(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

type readAtCloser struct {
	*io.SectionReader
	c io.Closer
}

func (r readAtCloser) Close() error { return r.c.Close() }

// planSave resolves the image of req and its parents.
func (p *Provider) planSave(ctx context.Context, req api.SaveRequest) (*savePlan, error) {
	name, id := strings.TrimSpace(req.Name), strings.TrimSpace(req.ID)
	switch {
	case name == "" && id == "":
		return nil, fmt.Errorf("save: a name or an id is required: %w", errdefs.ErrInvalidArgument)
	case name != "" && id != "":
		return nil, fmt.Errorf("save: give a name or an id, not both: %w", errdefs.ErrInvalidArgument)
	case find.HasWildcard(name):
		return nil, fmt.Errorf("save %q: the name cannot hold wildcards: %w", name, errdefs.ErrInvalidArgument)
	}
	vf, err := newVersionFilter(req.VersionOptions)
	if err != nil {
		return nil, err
	}
	if id != "" && (vf.any() || req.VersionOptions.AllVersions) {
		return nil, fmt.Errorf("save: version options select by name, not by id: %w", errdefs.ErrInvalidArgument)
	}
	if id != "" && strings.TrimSpace(req.Source) != "" {
		return nil, fmt.Errorf("save: an id selects an installed image; a source is searched by name: %w", errdefs.ErrInvalidArgument)
	}
	var recs []imageRecord
	var refs map[digest.Digest][]string
	var hosts map[string]string
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		if recs, err = listImages(tx); err != nil {
			return err
		}
		if hosts, err = sourceHosts(tx); err != nil {
			return err
		}
		refs, err = listRefs(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if id != "" {
		sel, err := selectByID(recs, id)
		if err != nil {
			return nil, err
		}
		return p.planInstalled(recs, refs, hosts, sel[0])
	}
	if strings.TrimSpace(req.Source) == "" {
		var matches []imageRecord
		for _, r := range recs {
			if sameName(name, &r) && vf.match(r.Version) {
				matches = append(matches, r)
			}
		}
		if len(matches) > 0 {
			return p.planInstalled(recs, refs, hosts, highest(matches))
		}
	}
	return p.planFromSource(ctx, recs, hosts, name, req)
}

// planInstalled plans an installed image and its installed parents.
func (p *Provider) planInstalled(recs []imageRecord, refs map[digest.Digest][]string, hosts map[string]string, rec imageRecord) (*savePlan, error) {
	sp := newSavePlan(hosts)
	sp.image = rec.image(refs[rec.Digest])
	if err := p.addInstalledChain(sp, recs, rec); err != nil {
		return nil, err
	}
	return sp, nil
}

// addInstalledChain prepends rec and its parents, which must be installed.
func (p *Provider) addInstalledChain(sp *savePlan, recs []imageRecord, rec imageRecord) error {
	byDigest := map[digest.Digest]imageRecord{}
	for _, r := range recs {
		byDigest[r.Digest] = r
	}
	cur := rec
	for range maxChain {
		p.addInstalled(sp, cur)
		if cur.Parent == nil {
			return nil
		}
		parent, ok := byDigest[digest.Digest(cur.Parent.Digest)]
		if !ok {
			return fmt.Errorf("image %s: its parent %s %s is not installed: %w",
				cur.label(), cur.Parent.Name, cur.Parent.Version, errdefs.ErrFailedPrecondition)
		}
		cur = parent
	}
	return fmt.Errorf("image %s: its parents loop or go deeper than %d images: %w", rec.label(), maxChain, errdefs.ErrFailedPrecondition)
}

// planFromSource resolves name as Install does and plans the image with
// its parents straight from the source; a parent that the source does not
// have but that is installed comes from the store.
func (p *Provider) planFromSource(ctx context.Context, recs []imageRecord, hosts map[string]string, name string, req api.SaveRequest) (*savePlan, error) {
	fo := findOptions(name, req.VersionOptions)
	if err := fo.Validate(); err != nil {
		return nil, err
	}
	found, idx, _, err := p.resolve(ctx, strings.TrimSpace(req.Source), fo)
	if err != nil {
		return nil, err
	}
	target, err := pickOne(found, api.InstallRequest{Name: name, VersionOptions: req.VersionOptions})
	if err != nil {
		return nil, err
	}
	catalog := mirrorOf(idx, target.Source)
	sp := newSavePlan(hosts)
	var top *pendingImage
	seen := map[string]bool{}
	cur := target
	for {
		if seen[cur.Digest] || len(sp.chain) >= maxChain {
			return nil, fmt.Errorf("image %s %s: its parents loop or go deeper than %d images: %w",
				target.Name, target.Version, maxChain, errdefs.ErrFailedPrecondition)
		}
		seen[cur.Digest] = true
		img, err := p.fetchImage(ctx, cur)
		if err != nil {
			return nil, err
		}
		if top == nil {
			top = img
		}
		sp.addFetched(img)
		if cur.Parent == nil {
			break
		}
		parent := *cur.Parent
		pe, ok, err := lookupParent(ctx, catalog, parent)
		if err != nil {
			return nil, err
		}
		if ok {
			cur = pe
			continue
		}
		label := strings.TrimSpace(parent.Name + " " + parent.Version)
		var installed *imageRecord
		for i := range recs {
			r := &recs[i]
			if (parent.Digest != "" && r.Digest.String() == parent.Digest) ||
				(parent.Digest == "" && sameName(parent.Name, r) && sameVersion(parent.Version, r.Version)) {
				installed = r
				break
			}
		}
		if installed == nil {
			return nil, fmt.Errorf("parent image %s of %s %s is neither in source %s nor installed: %w",
				label, cur.Name, cur.Version, target.Source, errdefs.ErrFailedPrecondition)
		}
		if err := p.addInstalledChain(sp, recs, *installed); err != nil {
			return nil, err
		}
		break
	}
	rec := top.record(time.Time{}) // not installed
	sp.image = rec.image(nil)
	return sp, nil
}

// Save writes the archive of an image, parents included, to w as a stream:
// a tar that is both an OCI image layout and a `docker save` archive (see
// package archive), each image named "host/repository:version" with the
// host of the registry of its source, or "repository:version" for an image
// made here or installed from a file.
//
// The image is selected by req.Name (with the version options; default the
// highest version) or req.ID (a digest or a unique id prefix). The
// installed image is saved; when no installed image matches, or req.Source
// is set, the image is resolved in the sources as Install resolves it and
// streamed straight from the source (manifests verified, every blob checked
// against its descriptor as it is written), without installing anything.
// req.Path and req.Force are ignored. Memory stays flat: blobs are copied
// one at a time. The blobs read from the store are leased against garbage
// collection until the save ends: an image removed while it is saved loses
// its record at once, and its blobs when the save is over. It returns the
// image saved; for an image from a source, Installed is zero. Bad input is
// InvalidArgument and no match NotFound, before a byte is written; after an
// error, what was written to w is not a valid archive.
func (p *Provider) Save(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
	if p.isClosing() {
		return api.Image{}, errClosed
	}
	sp, err := p.planSave(ctx, req)
	if err != nil {
		return api.Image{}, err
	}
	lease, err := p.leaseSave(ctx, sp)
	if err != nil {
		return api.Image{}, err
	}
	defer lease.release(ctx, false)
	// A writer that wants the image before the first byte (an HTTP
	// response, to name the file in its headers) says so with BeginSave.
	if s, ok := w.(interface{ BeginSave(api.Image) }); ok {
		s.BeginSave(sp.image)
	}
	if err := p.writeArchive(ctx, sp, w); err != nil {
		return api.Image{}, err
	}
	return sp.image, nil
}

// PlanSave is a save with WhatIf: it resolves the image and its parents
// as Save does, reads no blob and writes nothing. The result names them,
// and the path: req.Path as given (nothing is checked there, and no
// directory is made), or SaveFileName.
func (p *Provider) PlanSave(ctx context.Context, req api.SaveRequest) (api.SaveResult, error) {
	if p.isClosing() {
		return api.SaveResult{}, errClosed
	}
	sp, err := p.planSave(ctx, req)
	if err != nil {
		return api.SaveResult{}, err
	}
	res := api.SaveResult{WhatIf: true, Image: sp.image, Images: slices.Clone(sp.labels), Path: strings.TrimSpace(req.Path)}
	if res.Path == "" {
		res.Path = SaveFileName(sp.image.Name, sp.image.Version)
	}
	return res, nil
}

// leaseSave leases the blobs that sp reads from the store, and checks that
// they are still there: an image removed and collected between the plan
// and the lease is NotFound.
func (p *Provider) leaseSave(ctx context.Context, sp *savePlan) (*blobLease, error) {
	var digests []digest.Digest
	for _, rec := range sp.installed {
		digests = append(digests, digestsOf(rec.blobs())...)
	}
	lease, err := p.lease(ctx, "save", digests)
	if err != nil {
		return nil, err
	}
	for _, rec := range sp.installed {
		if err := p.checkBlobs(ctx, rec); err != nil {
			lease.release(ctx, false)
			return nil, fmt.Errorf("save %s: %w", sp.image.Name+" "+sp.image.Version, err)
		}
	}
	return lease, nil
}

func (p *Provider) writeArchive(ctx context.Context, sp *savePlan, w io.Writer) error {
	if err := archive.Write(ctx, w, sp.chain, sp.open); err != nil {
		return fmt.Errorf("save %s: %w", sp.image.Name+" "+sp.image.Version, err)
	}
	p.log.WithField("image", sp.image.Name+" "+sp.image.Version).WithField("images", strings.Join(sp.labels, ", ")).Info("image saved")
	return nil
}

// SaveToPath saves to req.Path on this host, as Save does, through fsys:
// every operation on the path (the stat of the target and its directory,
// the directory made with force, the temporary file, the rename, the
// removal of the temporary file after a failure) is one of fsys, so it
// acts with the rights of the caller that fsys stands for (hostfs.AsUser),
// and the file belongs to that caller, mode 0600. hostfs.OS() acts with
// the daemon's own rights.
//
// req.Path is a directory (the file gets SaveFileName) or a file. A path
// that ends with a separator, or that is an existing directory, is a
// directory. Without req.Force, an existing file is AlreadyExists ("...
// exists; use --force to overwrite") and a missing directory NotFound
// ("... does not exist; use --force to create it"); with it, a regular
// file is replaced (anything else is refused) and the directory created.
// A read-only file or directory, or one fsys may not write, is
// PermissionDenied. The archive is written to a temporary file in the
// target directory, synced and renamed over the target, so the file
// appears whole or not at all. The blobs are leased as in Save. The result
// names the absolute path and size of the file.
func (p *Provider) SaveToPath(ctx context.Context, req api.SaveRequest, fsys hostfs.FS) (api.SaveResult, error) {
	if p.isClosing() {
		return api.SaveResult{}, errClosed
	}
	if fsys == nil {
		return api.SaveResult{}, fmt.Errorf("save: no file system: %w", errdefs.ErrInvalidArgument)
	}
	raw := strings.TrimSpace(req.Path)
	if raw == "" {
		return api.SaveResult{}, fmt.Errorf("save: a path is required: %w", errdefs.ErrInvalidArgument)
	}
	if strings.ContainsRune(raw, 0) {
		return api.SaveResult{}, fmt.Errorf("save: path %q: NUL character: %w", raw, errdefs.ErrInvalidArgument)
	}
	sp, err := p.planSave(ctx, req)
	if err != nil {
		return api.SaveResult{}, err
	}
	target, err := savePath(fsys, raw, sp.image, req.Force)
	if err != nil {
		return api.SaveResult{}, err
	}
	lease, err := p.leaseSave(ctx, sp)
	if err != nil {
		return api.SaveResult{}, err
	}
	defer lease.release(ctx, false)
	size, err := p.saveFile(ctx, fsys, sp, target, req.Force)
	if err != nil {
		return api.SaveResult{}, err
	}
	p.log.WithField("path", target).WithField("bytes", size).Info("image saved to a file")
	return api.SaveResult{Path: target, Size: size, Image: sp.image}, nil
}

// saveFile writes the archive of sp to a temporary file beside target,
// syncs it and renames it over target, all through fsys, and returns its
// size. On a failure the temporary file is removed.
func (p *Provider) saveFile(ctx context.Context, fsys hostfs.FS, sp *savePlan, target string, force bool) (int64, error) {
	dir := filepath.Dir(target)
	f, err := fsys.CreateTemp(dir, "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return 0, pathError("directory", dir, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.log.WithError(err).WithField("path", tmp).Warn("temporary save file not removed")
			}
		}
	}()
	fw := content.NewFileWriter(f)
	defer fw.Close()
	if err := p.writeArchive(ctx, sp, fw); err != nil {
		return 0, err
	}
	if err := fw.Close(); err != nil {
		return 0, pathError("file", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return 0, pathError("file", tmp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, pathError("file", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, pathError("file", tmp, err)
	}
	// The target may have appeared while the archive was written; with
	// force, it may have become something other than a regular file.
	if fi, err := fsys.Lstat(target); err == nil {
		if !force {
			return 0, fmt.Errorf("file %s exists; use --force to overwrite: %w", target, errdefs.ErrAlreadyExists)
		}
		if !fi.Mode().IsRegular() {
			return 0, fmt.Errorf("%s exists and is not a regular file: %w", target, errdefs.ErrInvalidArgument)
		}
	}
	if err := fsys.Rename(tmp, target); err != nil {
		return 0, pathError("file", target, err)
	}
	done = true
	syncDir(dir)
	return fi.Size(), nil
}

// savePath applies the path rules of SaveToPath, through fsys, and returns
// the absolute path of the file to write; with force it creates a missing
// directory.
func savePath(fsys hostfs.FS, raw string, img api.Image, force bool) (string, error) {
	isDir := strings.HasSuffix(raw, "/") || strings.HasSuffix(raw, string(os.PathSeparator))
	abs, err := filepath.Abs(raw)
	if err != nil {
		return "", fmt.Errorf("save: path %q: %v: %w", raw, err, errdefs.ErrInvalidArgument)
	}
	if fi, err := fsys.Stat(abs); err == nil && fi.IsDir() {
		isDir = true
	}
	target, dir := abs, filepath.Dir(abs)
	if isDir {
		dir = abs
		target = filepath.Join(abs, SaveFileName(img.Name, img.Version))
	}
	fi, err := fsys.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !force {
			return "", fmt.Errorf("directory %s does not exist; use --force to create it: %w", dir, errdefs.ErrNotFound)
		}
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			return "", pathError("directory", dir, err)
		}
	case err != nil:
		return "", pathError("directory", dir, err)
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	case fi.Mode().Perm()&0o222 == 0:
		return "", fmt.Errorf("directory %s is read-only: %w", dir, errdefs.ErrPermissionDenied)
	}
	fi, err = fsys.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return target, nil
	case err != nil:
		return "", pathError("file", target, err)
	case fi.IsDir():
		return "", fmt.Errorf("%s is a directory: %w", target, errdefs.ErrInvalidArgument)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s exists and is not a regular file: %w", target, errdefs.ErrInvalidArgument)
	case fi.Mode().Perm()&0o222 == 0:
		return "", fmt.Errorf("file %s is read-only: %w", target, errdefs.ErrPermissionDenied)
	case !force:
		return "", fmt.Errorf("file %s exists; use --force to overwrite: %w", target, errdefs.ErrAlreadyExists)
	}
	return target, nil
}

// pathError gives a file system error on a save path its class.
func pathError(what, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s cannot be written: %v: %w", what, path, err, errdefs.ErrPermissionDenied)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: %v: %w", what, path, err, errdefs.ErrNotFound)
	case isNoSpace(err):
		return fmt.Errorf("%s %s: no space left: %v: %w", what, path, err, errdefs.ErrInsufficientStorage)
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}
