package publish

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

// memTarget is an in-memory Target that follows the registry contract
// closely enough for these tests: blobs are linked per repository, a
// manifest must reference blobs linked into its repository, and storing an
// identical manifest again keeps its record (Pushed unchanged).
type memTarget struct {
	mu        sync.Mutex
	discard   bool // keep only small blobs (memory tests)
	blobs     map[digest.Digest][]byte
	sizes     map[digest.Digest]int64
	links     map[string]map[digest.Digest]bool
	records   map[string]catalog.ManifestRecord // repo@digest
	tags      map[string]map[string]digest.Digest
	now       time.Time
	blobPuts  int
	manifests int
	mounts    int
}

func newMemTarget() *memTarget {
	return &memTarget{
		blobs:   map[digest.Digest][]byte{},
		sizes:   map[digest.Digest]int64{},
		links:   map[string]map[digest.Digest]bool{},
		records: map[string]catalog.ManifestRecord{},
		tags:    map[string]map[string]digest.Digest{},
		now:     time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (m *memTarget) writes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blobPuts + m.manifests + m.mounts
}

func (m *memTarget) link(repo string, d digest.Digest) {
	if m.links[repo] == nil {
		m.links[repo] = map[digest.Digest]bool{}
	}
	m.links[repo][d] = true
}

func (m *memTarget) StatBlob(_ context.Context, repo string, d digest.Digest) (content.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.links[repo][d] {
		return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return content.Info{Digest: d, Size: m.sizes[d]}, nil
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

func (m *memTarget) OpenBlob(ctx context.Context, repo string, d digest.Digest) (content.ReaderAt, error) {
	if _, err := m.StatBlob(ctx, repo, d); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return memReader{bytes.NewReader(m.blobs[d])}, nil
}

func (m *memTarget) MountBlob(_ context.Context, repo, from string, d digest.Digest) (content.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.links[from][d] {
		return content.Info{}, fmt.Errorf("blob %s in %s: %w", d, from, errdefs.ErrNotFound)
	}
	m.mounts++
	m.link(repo, d)
	return content.Info{Digest: d, Size: m.sizes[d]}, nil
}

func (m *memTarget) PutBlob(ctx context.Context, repo string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error) {
	dg := digest.SHA256.Digester()
	var buf bytes.Buffer
	var w io.Writer = io.MultiWriter(dg.Hash(), &buf)
	if m.discard {
		w = io.MultiWriter(dg.Hash(), &limitedBuffer{b: &buf, max: 1 << 20})
	}
	n, err := io.Copy(w, rd)
	if err != nil {
		return content.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return content.Info{}, err
	}
	d := dg.Digest()
	if expected != "" && expected != d {
		return content.Info{}, fmt.Errorf("blob %s: got %s: %w", expected, d, errdefs.ErrFailedPrecondition)
	}
	if size >= 0 && size != n {
		return content.Info{}, fmt.Errorf("blob %s: size %d, want %d: %w", d, n, size, errdefs.ErrFailedPrecondition)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobPuts++
	m.blobs[d] = buf.Bytes()
	m.sizes[d] = n
	m.link(repo, d)
	return content.Info{Digest: d, Size: n}, nil
}

func (m *memTarget) ResolveManifest(_ context.Context, repo, ref string) (catalog.ManifestRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolve(repo, ref)
}

func (m *memTarget) resolve(repo, ref string) (catalog.ManifestRecord, error) {
	d, ok := m.tags[repo][ref]
	if !ok {
		d = digest.Digest(ref)
	}
	rec, ok := m.records[repo+"@"+d.String()]
	if !ok {
		return catalog.ManifestRecord{}, fmt.Errorf("manifest %s:%s: %w", repo, ref, errdefs.ErrNotFound)
	}
	return rec, nil
}

func (m *memTarget) GetManifest(_ context.Context, repo, ref string) (catalog.ManifestRecord, content.ReaderAt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, err := m.resolve(repo, ref)
	if err != nil {
		return rec, nil, err
	}
	return rec, memReader{bytes.NewReader(m.blobs[rec.Digest])}, nil
}

func (m *memTarget) PutManifest(_ context.Context, repo, ref, mediaType string, body []byte) (catalog.ManifestRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var man ocispec.Manifest
	if err := json.Unmarshal(body, &man); err != nil {
		return catalog.ManifestRecord{}, fmt.Errorf("manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	total := int64(len(body))
	for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
		if !m.links[repo][d.Digest] {
			return catalog.ManifestRecord{}, fmt.Errorf("manifest blob %s unknown in %s: %w", d.Digest, repo, errdefs.ErrNotFound)
		}
		if m.sizes[d.Digest] != d.Size {
			return catalog.ManifestRecord{}, fmt.Errorf("manifest blob %s size: %w", d.Digest, errdefs.ErrInvalidArgument)
		}
		total += d.Size
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(m.blobs[man.Config.Digest], &cfg); err != nil {
		return catalog.ManifestRecord{}, fmt.Errorf("config: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	d := digest.FromBytes(body)
	key := repo + "@" + d.String()
	rec, ok := m.records[key]
	if !ok {
		m.now = m.now.Add(time.Second)
		rec = catalog.ManifestRecord{
			Digest: d, MediaType: mediaType, Size: int64(len(body)),
			Annotations: man.Annotations, ContentSize: total, OSVersion: cfg.OSVersion, Pushed: m.now,
		}
		m.records[key] = rec
		m.blobs[d] = append([]byte(nil), body...)
		m.sizes[d] = int64(len(body))
	}
	m.manifests++
	if m.tags[repo] == nil {
		m.tags[repo] = map[string]digest.Digest{}
	}
	if ref != d.String() {
		m.tags[repo][ref] = d
	}
	return rec, nil
}

// TaggedManifests lists every tag with its manifest, by repository and tag.
func (m *memTarget) TaggedManifests(context.Context) ([]catalog.TaggedManifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []catalog.TaggedManifest
	for repo, tags := range m.tags {
		for tag, d := range tags {
			out = append(out, catalog.TaggedManifest{Repository: repo, Tag: tag, Manifest: m.records[repo+"@"+d.String()]})
		}
	}
	slices.SortFunc(out, func(a, b catalog.TaggedManifest) int {
		return cmp.Or(cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Tag, b.Tag))
	})
	return out, nil
}

// Find applies the find rules to every tagged manifest, as catalogd's
// index must answer.
func (m *memTarget) Find(_ context.Context, o find.Options) ([]api.FindEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ts []find.Tagged
	for repo, tags := range m.tags {
		for tag, d := range tags {
			ts = append(ts, find.Tagged{Tag: tag, Manifest: m.records[repo+"@"+d.String()].FindManifest(repo, nil)})
		}
	}
	slices.SortFunc(ts, func(a, b find.Tagged) int {
		return cmp.Or(cmp.Compare(a.Manifest.Repository, b.Manifest.Repository), cmp.Compare(a.Tag, b.Tag))
	})
	return find.Filter(find.Index(find.Group(ts)), o)
}

var _ Target = (*memTarget)(nil)

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
