package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// ResolveManifest finds the manifest that reference (a tag or a digest)
// names in repo. An unknown repository gives ErrNameUnknown, an unknown tag
// or digest ErrManifestUnknown.
func (r *Registry) ResolveManifest(ctx context.Context, repo, reference string) (ManifestRecord, error) {
	if err := ValidateName(repo); err != nil {
		return ManifestRecord{}, err
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return ManifestRecord{}, err
	}
	var rec ManifestRecord
	err = r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		if tag != "" {
			v := meta.GetTagsBucket(rb).Get([]byte(tag))
			if v == nil {
				return fmt.Errorf("manifest %s:%s: %w", repo, tag, ErrManifestUnknown)
			}
			dgst = digest.Digest(v)
		}
		var ok bool
		rec, ok, err = getRecord(rb, dgst)
		if err == nil && !ok {
			err = fmt.Errorf("manifest %s@%s: %w", repo, dgst, ErrManifestUnknown)
		}
		return err
	})
	return rec, err
}

// GetManifest resolves reference and opens the manifest bytes. The caller
// closes the reader.
func (r *Registry) GetManifest(ctx context.Context, repo, reference string) (ManifestRecord, content.ReaderAt, error) {
	rec, err := r.ResolveManifest(ctx, repo, reference)
	if err != nil {
		return ManifestRecord{}, nil, err
	}
	ra, err := r.cs.ReaderAt(ctx, rec.Digest)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Deleted since it was resolved.
			return ManifestRecord{}, nil, fmt.Errorf("manifest %s@%s: %w", repo, rec.Digest, ErrManifestUnknown)
		}
		return ManifestRecord{}, nil, fmt.Errorf("manifest %s@%s: %w", repo, rec.Digest, err)
	}
	return rec, ra, nil
}

// PutManifest validates and stores a manifest under reference.
//
// reference is a tag, stored with the sha256 digest of body, or a digest
// (sha256 or sha512) that body must match (else ErrDigestMismatch).
// mediaType is the Content-Type of the request; when body names its own
// media type the two must agree. Supported are OCI image manifests and
// indexes and Docker schema 2 manifests and manifest lists; Docker schema 1
// gives ErrUnsupported. A body over the size limit gives
// ErrManifestTooLarge; bad JSON or a broken rule ErrManifestInvalid; a
// distributable blob or listed manifest that repo lacks
// ErrManifestBlobUnknown. On error nothing changes.
//
// The returned record has Subject set when the manifest has a subject; the
// referrer entry is recorded whether or not the subject exists. Putting the
// same bytes under the same reference again changes nothing and returns
// the record of the first put.
func (r *Registry) PutManifest(ctx context.Context, repo, reference, mediaType string, body []byte) (ManifestRecord, error) {
	if err := ValidateName(repo); err != nil {
		return ManifestRecord{}, err
	}
	if int64(len(body)) > r.maxManifestSize {
		return ManifestRecord{}, fmt.Errorf("manifest of %d bytes, at most %d accepted: %w", len(body), r.maxManifestSize, ErrManifestTooLarge)
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return ManifestRecord{}, err
	}
	if dgst != "" {
		if got := dgst.Algorithm().FromBytes(body); got != dgst {
			return ManifestRecord{}, fmt.Errorf("manifest %s: body has digest %s: %w", dgst, got, ErrDigestMismatch)
		}
	} else {
		dgst = digest.SHA256.FromBytes(body)
	}
	m, err := parseManifest(dgst, mediaType, body)
	if err != nil {
		return ManifestRecord{}, err
	}

	if rec, ok, err := r.storedAs(ctx, repo, tag, dgst); err != nil || ok {
		return rec, err
	}
	if err := r.checkManifestReferences(ctx, repo, m); err != nil {
		return ManifestRecord{}, err
	}
	rec := ManifestRecord{
		Digest:       dgst,
		MediaType:    m.mediaType,
		Size:         int64(len(body)),
		ArtifactType: m.artifactType,
		Annotations:  m.annotations,
		ContentSize:  m.contentSize,
		Pushed:       time.Now().UTC(),
		Kind:         m.kind(),
	}
	if m.subject != nil {
		rec.Subject = m.subject.Digest
	}
	if m.config != nil && (m.config.MediaType == ocispec.MediaTypeImageConfig || m.config.MediaType == MediaTypeDockerConfig) {
		rec.OSVersion = r.readOSVersion(ctx, *m.config)
	}

	rec, err = r.storeManifest(ctx, repo, tag, rec, m, body)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		// The content may be committed with nothing pointing at it.
		r.deleteUnreferenced(ctx, dgst)
	}
	return rec, err
}

// storedAs returns the record of dgst when reference already names it in
// repo, so that a repeated put changes nothing.
func (r *Registry) storedAs(ctx context.Context, repo, tag string, dgst digest.Digest) (ManifestRecord, bool, error) {
	var (
		rec ManifestRecord
		ok  bool
	)
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return nil
		}
		if tag != "" && digest.Digest(meta.GetTagsBucket(rb).Get([]byte(tag))) != dgst {
			return nil
		}
		var err error
		rec, ok, err = getRecord(rb, dgst)
		return err
	})
	return rec, ok, err
}

// checkManifestReferences checks, before any content is written, that repo
// has what the manifest refers to, with the sizes the descriptors give.
// storeManifest checks the links again in its transaction.
func (r *Registry) checkManifestReferences(ctx context.Context, repo string, m *manifest) error {
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		return checkReferences(meta.GetRepositoryBucket(tx, repo), m, true)
	})
	if err != nil {
		return err
	}
	for _, d := range m.blobs {
		info, err := r.cs.Info(ctx, d.Digest)
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("manifest %s: blob %s: %w", m.digest, d.Digest, ErrManifestBlobUnknown)
		}
		if err != nil {
			return fmt.Errorf("manifest %s: blob %s: %w", m.digest, d.Digest, err)
		}
		if info.Size != d.Size {
			return fmt.Errorf("manifest %s: descriptor of blob %s has size %d, the blob has %d bytes: %w",
				m.digest, d.Digest, d.Size, info.Size, ErrManifestInvalid)
		}
	}
	return nil
}

// checkReferences checks that repo links every blob of m and holds every
// manifest that m lists. With sizes, the listed manifests' sizes must match
// their descriptors too.
func checkReferences(rb *bolt.Bucket, m *manifest, sizes bool) error {
	blobs := meta.GetBlobsBucket(rb)
	for _, d := range m.blobs {
		if !hasKey(blobs, []byte(d.Digest)) {
			return fmt.Errorf("manifest %s: blob %s (%s): %w", m.digest, d.Digest, d.MediaType, ErrManifestBlobUnknown)
		}
	}
	for _, d := range m.manifests {
		child, ok, err := getRecord(rb, d.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("manifest %s: manifest %s: %w", m.digest, d.Digest, ErrManifestBlobUnknown)
		}
		if sizes && child.Size != d.Size {
			return fmt.Errorf("manifest %s: descriptor of manifest %s has size %d, the manifest has %d bytes: %w",
				m.digest, d.Digest, d.Size, child.Size, ErrManifestInvalid)
		}
	}
	return nil
}

// readOSVersion returns the os.version of an image config, or "" when the
// config cannot be read or has none.
func (r *Registry) readOSVersion(ctx context.Context, config ocispec.Descriptor) string {
	if config.Size > maxConfigSize {
		return ""
	}
	ra, err := r.cs.ReaderAt(ctx, config.Digest)
	if err != nil {
		return ""
	}
	defer ra.Close()
	b, err := io.ReadAll(io.LimitReader(content.NewSectionReader(ra), maxConfigSize))
	if err != nil {
		return ""
	}
	var cfg struct {
		OSVersion string `json:"os.version"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return ""
	}
	return cfg.OSVersion
}

// storeManifest commits body to the content store, then records the
// manifest, its tag, its referrer entry and its blob link in one
// transaction. An existing record of the same digest is kept as it is.
func (r *Registry) storeManifest(ctx context.Context, repo, tag string, rec ManifestRecord, m *manifest, body []byte) (ManifestRecord, error) {
	r.gc.RLock()
	defer r.gc.RUnlock()
	if err := r.writeContent(ctx, rec.Digest, body); err != nil {
		return ManifestRecord{}, err
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return ManifestRecord{}, err
	}
	err = r.db.Update(ctx, func(tx *bolt.Tx) error {
		rb, err := meta.CreateRepositoryBucket(tx, repo)
		if err != nil {
			return err
		}
		if err := checkReferences(rb, m, false); err != nil {
			return err
		}
		key := []byte(rec.Digest)
		if old, ok, err := getRecord(rb, rec.Digest); err != nil {
			return err
		} else if ok {
			rec = old
		} else if err := meta.GetManifestsBucket(rb).Put(key, val); err != nil {
			return err
		}
		if tag != "" {
			tags := meta.GetTagsBucket(rb)
			prev := digest.Digest(tags.Get([]byte(tag)))
			if err := tags.Put([]byte(tag), key); err != nil {
				return err
			}
			fb, err := r.writeIndex(ctx, tx)
			if err != nil {
				return err
			}
			if err := fb.setTag(rb, repo, tag, rec.Digest, prev); err != nil {
				return err
			}
		}
		if m.subject != nil {
			refs, err := meta.CreateReferrersBucket(rb, string(m.subject.Digest))
			if err != nil {
				return err
			}
			if err := refs.Put(key, []byte(m.referrerType)); err != nil {
				return err
			}
		}
		return linkBlob(tx, repo, rec.Digest)
	})
	if err != nil {
		return ManifestRecord{}, err
	}
	return rec, nil
}

// writeContent commits b as dgst; content already there is success. The
// caller holds r.gc.
func (r *Registry) writeContent(ctx context.Context, dgst digest.Digest, b []byte) error {
	ref := refPrefixManifest + newID()
	w, err := r.cs.Writer(ctx, ref, content.WithExpected(dgst), content.WithTotal(int64(len(b))))
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		r.abortIngest(ctx, ref)
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	if err := w.Commit(ctx, int64(len(b)), dgst); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	return nil
}

// DeleteManifest deletes a tag, or a manifest by digest with every tag that
// points at it.
//
// By digest it also removes the referrer entry the manifest created and
// its blob link, and deletes its content when no repository refers to it
// any more. An unknown tag or digest gives ErrManifestUnknown, an unknown
// repository ErrNameUnknown.
func (r *Registry) DeleteManifest(ctx context.Context, repo, reference string) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return err
	}
	if tag != "" {
		return r.db.Update(ctx, func(tx *bolt.Tx) error {
			rb := meta.GetRepositoryBucket(tx, repo)
			if rb == nil {
				return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
			}
			tags := meta.GetTagsBucket(rb)
			dgst := digest.Digest(tags.Get([]byte(tag)))
			if dgst == "" {
				return fmt.Errorf("manifest %s:%s: %w", repo, tag, ErrManifestUnknown)
			}
			if err := tags.Delete([]byte(tag)); err != nil {
				return err
			}
			fb, err := r.writeIndex(ctx, tx)
			if err != nil {
				return err
			}
			return fb.removeTag(rb, repo, tag, dgst)
		})
	}

	r.gc.Lock()
	defer r.gc.Unlock()
	var unreferenced bool
	err = r.db.Update(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		rec, ok, err := getRecord(rb, dgst)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("manifest %s@%s: %w", repo, dgst, ErrManifestUnknown)
		}
		key := []byte(dgst)
		if err := meta.GetManifestsBucket(rb).Delete(key); err != nil {
			return err
		}
		fb, err := r.writeIndex(ctx, tx)
		if err != nil {
			return err
		}
		if err := fb.deleteTagsOf(rb, repo, dgst); err != nil {
			return err
		}
		if rec.Subject != "" {
			if refs := meta.GetReferrersBucket(rb, string(rec.Subject)); refs != nil {
				if err := refs.Delete(key); err != nil {
					return err
				}
				if err := meta.DeleteReferrersBucketIfEmpty(rb, string(rec.Subject)); err != nil {
					return err
				}
			}
		}
		if err := meta.GetBlobsBucket(rb).Delete(key); err != nil {
			return err
		}
		if err := fb.update(rb, repo, dgst); err != nil {
			return err
		}
		if _, err := meta.DeleteRepositoryBucketIfEmpty(tx, repo); err != nil {
			return err
		}
		unreferenced = !isReferenced(tx, dgst)
		return nil
	})
	if err != nil {
		return err
	}
	if unreferenced {
		r.deleteContent(ctx, dgst)
	}
	return nil
}

// deleteTagsOf deletes every tag of repo that points at dgst, found in the
// index's tags of the manifest rather than by a scan of the repository.
func (b findBuckets) deleteTagsOf(rb *bolt.Bucket, repo string, dgst digest.Digest) error {
	tags := meta.GetTagsBucket(rb)
	for _, tag := range b.tagsOf(repo, dgst) {
		if err := tags.Delete([]byte(tag)); err != nil {
			return err
		}
		if err := b.tags.Delete(tagKey(repo, dgst, tag)); err != nil {
			return err
		}
		// The image that a deleted signature manifest signed loses its
		// Signatures flag.
		if err := b.updateSigned(rb, repo, tag); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnreferenced deletes the content dgst when nothing in the database
// refers to it.
func (r *Registry) deleteUnreferenced(ctx context.Context, dgst digest.Digest) {
	r.gc.Lock()
	defer r.gc.Unlock()
	var unreferenced bool
	err := r.db.View(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		unreferenced = !isReferenced(tx, dgst)
		return nil
	})
	if err == nil && unreferenced {
		r.deleteContent(ctx, dgst)
	}
}

// deleteContent removes the file of dgst, whose last reference is gone from
// the database. The caller holds r.gc for writing. The metadata is already
// committed, so a failure is logged, not returned.
func (r *Registry) deleteContent(ctx context.Context, dgst digest.Digest) {
	err := r.cs.Delete(context.WithoutCancel(ctx), dgst)
	if err != nil && !errdefs.IsNotFound(err) {
		logrus.WithError(err).WithField("digest", dgst).Warn("delete unreferenced content")
	}
}

// Listings.

// manifest is what PutManifest needs to know of a manifest body.
type manifest struct {
	digest       digest.Digest
	mediaType    string
	artifactType string // the artifactType field
	referrerType string // artifactType, or else the config media type
	config       *ocispec.Descriptor
	subject      *ocispec.Descriptor
	annotations  map[string]string
	// blobs must be linked into the repository: the config and the
	// distributable layers.
	blobs []ocispec.Descriptor
	// manifests must be stored in the repository: an index's entries.
	manifests []ocispec.Descriptor
	// layerTypes are the media types of an image manifest's layers.
	layerTypes  []string
	contentSize int64
}

// kind is the ManifestRecord.Kind of m.
func (m *manifest) kind() string {
	var config string
	if m.config != nil {
		config = m.config.MediaType
	}
	if find.IsImage(m.mediaType, m.artifactType, config, m.layerTypes, m.subject != nil) {
		return KindImage
	}
	return KindArtifact
}

// manifestFields holds the fields of every supported manifest kind, so that
// fields of the wrong kind can be refused.
type manifestFields struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

func parseManifest(dgst digest.Digest, mediaType string, body []byte) (*manifest, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("manifest %s: %s: %w", dgst, fmt.Sprintf(format, args...), ErrManifestInvalid)
	}
	if mt, _, ok := strings.Cut(mediaType, ";"); ok {
		mediaType = mt
	}
	mediaType = strings.TrimSpace(mediaType)

	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, invalid("%v", err)
	}
	switch {
	case f.MediaType != "" && mediaType != "" && f.MediaType != mediaType:
		return nil, invalid("media type %q in the body, %q given", f.MediaType, mediaType)
	case mediaType == "":
		mediaType = f.MediaType
	}
	if mediaType == "" {
		// Neither says: infer OCI from the fields present.
		switch {
		case f.Config != nil && f.Manifests == nil:
			mediaType = ocispec.MediaTypeImageManifest
		case f.Manifests != nil && f.Config == nil && f.Layers == nil:
			mediaType = ocispec.MediaTypeImageIndex
		default:
			return nil, invalid("no media type")
		}
	}

	m := &manifest{
		digest:       dgst,
		mediaType:    mediaType,
		artifactType: f.ArtifactType,
		referrerType: f.ArtifactType,
		subject:      f.Subject,
		annotations:  f.Annotations,
		contentSize:  int64(len(body)),
	}
	switch mediaType {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		if f.Manifests != nil {
			return nil, invalid("an image manifest has no manifests field")
		}
		if f.Config == nil {
			return nil, invalid("no config")
		}
		if err := checkDescriptor(*f.Config); err != nil {
			return nil, invalid("config: %v", err)
		}
		m.config = f.Config
		m.blobs = append(m.blobs, *f.Config)
		m.contentSize += f.Config.Size
		if m.referrerType == "" {
			m.referrerType = f.Config.MediaType
		}
		for i, l := range f.Layers {
			if err := checkDescriptor(l); err != nil {
				return nil, invalid("layer %d: %v", i, err)
			}
			m.contentSize += l.Size
			m.layerTypes = append(m.layerTypes, l.MediaType)
			if !IsNonDistributable(l.MediaType) {
				m.blobs = append(m.blobs, l)
			}
		}
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		if f.Config != nil || f.Layers != nil {
			return nil, invalid("an index has no config or layers field")
		}
		for i, d := range f.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, invalid("manifest %d: %v", i, err)
			}
			m.contentSize += d.Size
			m.manifests = append(m.manifests, d)
		}
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1Signed:
		return nil, fmt.Errorf("manifest %s: Docker schema 1 manifests: %w", dgst, ErrUnsupported)
	default:
		return nil, invalid("unsupported media type %q", mediaType)
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	if f.Subject != nil {
		if err := checkDescriptor(*f.Subject); err != nil {
			return nil, invalid("subject: %v", err)
		}
	}
	return m, nil
}

// checkDescriptor checks a descriptor's digest, size and embedded data.
func checkDescriptor(d ocispec.Descriptor) error {
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
			return fmt.Errorf("data does not match digest %s and size %d", d.Digest, d.Size)
		}
	}
	return nil
}

// bbolt helpers. Byte slices from a transaction are copied before it ends:
// json.Unmarshal and string conversions copy.
