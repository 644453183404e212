// Package mirror is providerd's index of one source, kept in its bbolt
// database under v1/mirrors/<source>/ (see store/meta): the source's Find
// entries in a find index (catalog/find/findindex), the state of its sync,
// and, for a plain registry, what the crawl has read of each repository
// and each manifest. Find and install resolution read the mirror, not the
// network; provider/source fills it, through catalogd's change feed or a
// crawl of a plain registry.
//
// Every write is one short transaction: a page of the feed, a page of
// _catalog, or one repository.
package mirror

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/find/findindex"
	"github.com/containerprovider/containerprovider/store/meta"
)

// The ways a mirror syncs.
const (
	ModeFeed  = "feed"  // catalogd's change feed
	ModeCrawl = "crawl" // _catalog, tags/list and the manifests
)

// State is the sync state of a mirror.
type State struct {
	// Mode is ModeFeed or ModeCrawl; "" before the first sync.
	Mode string `json:"mode,omitempty"`

	// Index and Seq are where the mirror stands in catalogd's feed.
	Index string `json:"index,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`

	// Pass numbers the crawls; CatalogLast is the last repository of
	// _catalog that the crawl of Pass has listed, CatalogDone says it has
	// listed them all, PassDone that the pass has ended. Listed, Crawled
	// and Failed count the repositories of Pass listed, read and whose
	// tags could not be read, so far.
	Pass        uint64 `json:"pass,omitempty"`
	CatalogLast string `json:"catalogLast,omitempty"`
	CatalogDone bool   `json:"catalogDone,omitempty"`
	PassDone    bool   `json:"passDone,omitempty"`
	Listed      int    `json:"listed,omitempty"`
	Crawled     int    `json:"crawled,omitempty"`
	Failed      int    `json:"failed,omitempty"`

	// Complete says that a whole sync has ended since the mirror was
	// made (or reset): the mirror holds every entry of the source as of
	// LastSync.
	Complete bool      `json:"complete"`
	LastSync time.Time `json:"lastSync,omitzero"`
	// LastError is the error of the last sync, "" when it succeeded.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`

	// Origin is the location of the registry mirror the index was
	// crawled from while the source's own location was unreachable; ""
	// when the index is the source's. Syncs carry it in the State they
	// read and write back.
	Origin string `json:"origin,omitempty"`
}

// Repository is what a crawl knows of one repository.
type Repository struct {
	// Listed is the pass whose _catalog listed it, Crawled the pass that
	// read its tags last.
	Listed  uint64 `json:"listed"`
	Crawled uint64 `json:"crawled"`
	// ETag is that of its tags/list, for a conditional request.
	ETag string `json:"etag,omitempty"`
	// Tags maps each tag to the digest of its manifest.
	Tags map[string]string `json:"tags,omitempty"`
}

// Manifest is what Find reads of a manifest of a plain registry, kept by
// digest since a digest never changes.
type Manifest struct {
	Digest string `json:"digest"`
	// Image says whether Find lists it (find.IsImage).
	Image       bool              `json:"image"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Size        int64             `json:"size"`
	OSVersion   string            `json:"osVersion,omitempty"`
	Created     time.Time         `json:"created,omitzero"`
}

// Mirror is the mirror of one source in db.
type Mirror struct {
	db     *meta.DB
	source string
}

// New is the mirror of source in db; it is created at its first write.
func New(db *meta.DB, source string) *Mirror { return &Mirror{db: db, source: source} }

// Source is the name of the mirrored source.
func (m *Mirror) Source() string { return m.source }

// buckets are those of the mirror in one transaction.
type buckets struct {
	root *bolt.Bucket
	findindex.Buckets
	manifests, repos *bolt.Bucket
	count            int64
	counted          bool
}

func open(root *bolt.Bucket) *buckets {
	b := &buckets{root: root}
	b.Entries = root.Bucket([]byte(meta.MirrorEntries))
	b.Names = root.Bucket([]byte(meta.MirrorNames))
	b.Digests = root.Bucket([]byte(meta.MirrorDigests))
	b.manifests = root.Bucket([]byte(meta.MirrorManifests))
	b.repos = root.Bucket([]byte(meta.MirrorRepositories))
	if v := root.Get(meta.KeyMirrorCount); len(v) == 8 {
		b.count = int64(binary.BigEndian.Uint64(v))
	}
	return b
}

// view runs fn over the mirror's buckets; ok is false (and fn not run)
// when the mirror has none yet.
func (m *Mirror) view(ctx context.Context, fn func(b *buckets) error) (ok bool, err error) {
	err = m.db.View(ctx, func(tx *bolt.Tx) error {
		root := meta.GetMirrorBucket(tx, m.source)
		if root == nil {
			return nil
		}
		ok = true
		return fn(open(root))
	})
	return ok, err
}

// update runs fn over the mirror's buckets, created if missing, and
// stores the count of entries that fn's puts and deletes moved.
func (m *Mirror) update(ctx context.Context, fn func(b *buckets) error) error {
	return m.db.Update(ctx, m.tx(fn))
}

// batch is update in a transaction that concurrent writes may share (see
// meta.DB.Batch): the repositories that a crawl reads at the same time
// commit together.
func (m *Mirror) batch(ctx context.Context, fn func(b *buckets) error) error {
	return m.db.Batch(ctx, m.tx(fn))
}

func (m *Mirror) tx(fn func(b *buckets) error) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		root, err := meta.CreateMirrorBucket(tx, m.source)
		if err != nil {
			return err
		}
		b := open(root)
		before := b.count
		if err := fn(b); err != nil {
			return err
		}
		if b.count != before {
			return root.Put(meta.KeyMirrorCount, binary.BigEndian.AppendUint64(nil, uint64(max(b.count, 0))))
		}
		return nil
	}
}

func (b *buckets) put(r findindex.Record) error {
	old, err := b.Put(r)
	if err == nil && old == nil {
		b.count++
	}
	return err
}

func (b *buckets) delete(repo, dgst string) error {
	old, err := b.Delete(repo, dgst)
	if err == nil && old != nil {
		b.count--
	}
	return err
}

func (b *buckets) state() (State, error) {
	var st State
	v := b.root.Get(meta.KeyMirrorState)
	if v == nil {
		return st, nil
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("mirror state: %w", err)
	}
	return st, nil
}

func (b *buckets) setState(st State) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.root.Put(meta.KeyMirrorState, v)
}

// State is the mirror's sync state and its number of entries.
func (m *Mirror) State(ctx context.Context) (State, int, error) {
	var st State
	var n int64
	_, err := m.view(ctx, func(b *buckets) error {
		var err error
		st, err = b.state()
		n = b.count
		return err
	})
	return st, int(n), err
}

// SetState writes the sync state.
func (m *Mirror) SetState(ctx context.Context, st State) error {
	return m.update(ctx, func(b *buckets) error { return b.setState(st) })
}

// Reset empties the mirror and writes st.
func (m *Mirror) Reset(ctx context.Context, st State) error {
	err := m.db.Update(ctx, func(tx *bolt.Tx) error { return meta.DeleteMirrorBucket(tx, m.source) })
	if err != nil {
		return err
	}
	return m.SetState(ctx, st)
}

// Delete deletes the mirror.
func (m *Mirror) Delete(ctx context.Context) error {
	return m.db.Update(ctx, func(tx *bolt.Tx) error { return meta.DeleteMirrorBucket(tx, m.source) })
}

// ApplyChanges writes a page of catalogd's change feed and then st, in
// one transaction.
func (m *Mirror) ApplyChanges(ctx context.Context, changes []api.FindChange, st State) error {
	return m.update(ctx, func(b *buckets) error {
		for _, c := range changes {
			if c.Removed || c.Entry == nil {
				if err := b.delete(c.Repository, c.Digest); err != nil {
					return err
				}
				continue
			}
			e := *c.Entry
			e.Repository, e.Digest, e.Source, e.Parent = c.Repository, c.Digest, "", nil
			if err := b.put(findindex.Record{Entry: e, BaseName: c.BaseName, BaseDigest: c.BaseDigest, Seq: c.Seq}); err != nil {
				return err
			}
		}
		return b.setState(st)
	})
}

// ListRepositories records repos as listed by the crawl of st.Pass and
// then writes st, in one transaction.
func (m *Mirror) ListRepositories(ctx context.Context, repos []string, st State) error {
	return m.update(ctx, func(b *buckets) error {
		for _, name := range repos {
			r, _, err := b.repository(name)
			if err != nil {
				return err
			}
			r.Listed = st.Pass
			if err := b.putRepository(name, r); err != nil {
				return err
			}
		}
		return b.setState(st)
	})
}

func (b *buckets) repository(name string) (Repository, bool, error) {
	var r Repository
	v := b.repos.Get([]byte(name))
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("mirror repository %s: %w", name, err)
	}
	return r, true, nil
}

func (b *buckets) putRepository(name string, r Repository) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.repos.Put([]byte(name), v)
}

// Pending lists, in order after the repository after, at most n
// repositories that the crawl of pass has listed and not yet crawled.
func (m *Mirror) Pending(ctx context.Context, pass uint64, after string, n int) ([]string, error) {
	var out []string
	_, err := m.view(ctx, func(b *buckets) error {
		c := b.repos.Cursor()
		k, v := c.Seek([]byte(after))
		for ; k != nil && len(out) < n; k, v = c.Next() {
			if string(k) == after && after != "" {
				continue
			}
			var r Repository
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("mirror repository %s: %w", k, err)
			}
			if r.Listed == pass && r.Crawled < pass {
				out = append(out, string(k))
			}
		}
		return nil
	})
	return out, err
}

// Repository is what the crawl knows of the repository name.
func (m *Mirror) Repository(ctx context.Context, name string) (Repository, bool, error) {
	var r Repository
	var found bool
	_, err := m.view(ctx, func(b *buckets) error {
		var err error
		r, found, err = b.repository(name)
		return err
	})
	return r, found, err
}

// Manifests looks up the manifests of dgsts that a crawl has read.
func (m *Mirror) Manifests(ctx context.Context, dgsts []string) (map[string]Manifest, error) {
	out := map[string]Manifest{}
	_, err := m.view(ctx, func(b *buckets) error {
		for _, d := range dgsts {
			v := b.manifests.Get([]byte(d))
			if v == nil {
				continue
			}
			var mf Manifest
			if err := json.Unmarshal(v, &mf); err != nil {
				return fmt.Errorf("mirror manifest %s: %w", d, err)
			}
			out[d] = mf
		}
		return nil
	})
	return out, err
}

// PutRepository writes what the crawl read of the repository name: its
// state r (tags and their digests), the manifests read for it, and its
// entries, replacing the ones it had, in one transaction. When counted is
// set (the crawl of a pass, not a lookup), the state's Crawled count
// moves on.
func (m *Mirror) PutRepository(ctx context.Context, name string, r Repository, manifests []Manifest, counted bool) error {
	return m.batch(ctx, func(b *buckets) error {
		for _, mf := range manifests {
			v, err := json.Marshal(mf)
			if err != nil {
				return err
			}
			if err := b.manifests.Put([]byte(mf.Digest), v); err != nil {
				return err
			}
		}
		if err := b.replaceEntries(name, r.Tags); err != nil {
			return err
		}
		if err := b.putRepository(name, r); err != nil {
			return err
		}
		if !counted {
			return nil
		}
		st, err := b.state()
		if err != nil {
			return err
		}
		st.Crawled++
		return b.setState(st)
	})
}

// MarkFailed records that the crawl could not read the tags of the
// repository name: its state becomes r, its entries stay, and the
// state's Crawled and Failed counts move on, in one transaction.
func (m *Mirror) MarkFailed(ctx context.Context, name string, r Repository) error {
	return m.batch(ctx, func(b *buckets) error {
		if err := b.putRepository(name, r); err != nil {
			return err
		}
		st, err := b.state()
		if err != nil {
			return err
		}
		st.Crawled++
		st.Failed++
		return b.setState(st)
	})
}

// replaceEntries makes the entries of repo those of its tags, tag to
// digest: one per image manifest, the ones no tag points at removed.
func (b *buckets) replaceEntries(repo string, tags map[string]string) error {
	byDigest := map[string][]string{}
	for t, d := range tags {
		byDigest[d] = append(byDigest[d], t)
	}
	var stale []string
	err := b.Repository(repo, func(r findindex.Record) error {
		if byDigest[r.Entry.Digest] == nil {
			stale = append(stale, r.Entry.Digest)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range stale {
		if err := b.delete(repo, d); err != nil {
			return err
		}
	}
	for d, ts := range byDigest {
		v := b.manifests.Get([]byte(d))
		if v == nil {
			continue // unreadable: left out, as the crawl logged
		}
		var mf Manifest
		if err := json.Unmarshal(v, &mf); err != nil {
			return fmt.Errorf("mirror manifest %s: %w", d, err)
		}
		if !mf.Image {
			if err := b.delete(repo, d); err != nil {
				return err
			}
			continue
		}
		slices.Sort(ts)
		_, signed := tags[find.SignatureTag(d)]
		rec := findindex.NewRecord(find.Manifest{
			Repository: repo, Digest: d, Tags: ts, Annotations: mf.Annotations,
			Size: mf.Size, OSVersion: mf.OSVersion, Pushed: mf.Created, Signatures: signed,
		})
		if old, err := b.Get(repo, d); err != nil {
			return err
		} else if old != nil && old.Same(rec) {
			continue
		}
		if err := b.put(rec); err != nil {
			return err
		}
	}
	return nil
}

// EndPass deletes the repositories that the crawl of pass did not list,
// with their entries, and the manifests no repository points at any
// more, then writes st, in one transaction. It returns the number of
// repositories deleted.
func (m *Mirror) EndPass(ctx context.Context, pass uint64, st State) (int, error) {
	dropped := 0
	err := m.update(ctx, func(b *buckets) error {
		var gone []string
		used := map[string]bool{}
		err := b.repos.ForEach(func(k, v []byte) error {
			var r Repository
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("mirror repository %s: %w", k, err)
			}
			if r.Listed < pass {
				gone = append(gone, string(k))
				return nil
			}
			for _, d := range r.Tags {
				used[d] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range gone {
			if err := b.replaceEntries(name, nil); err != nil {
				return err
			}
			if err := b.repos.Delete([]byte(name)); err != nil {
				return err
			}
		}
		dropped = len(gone)
		var unused [][]byte
		err = b.manifests.ForEach(func(k, _ []byte) error {
			if !used[string(k)] {
				unused = append(unused, slices.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range unused {
			if err := b.manifests.Delete(k); err != nil {
				return err
			}
		}
		return b.setState(st)
	})
	return dropped, err
}

// Candidates are the entries whose name or repository may match the
// pattern name (findindex.Buckets.Candidates), parents resolved within
// the mirror, each with Source set.
func (m *Mirror) Candidates(ctx context.Context, name string) ([]api.FindEntry, error) {
	var out []api.FindEntry
	_, err := m.view(ctx, func(b *buckets) error {
		recs, err := b.Buckets.Candidates(name)
		if err != nil {
			return err
		}
		out = b.Resolve(recs)
		return nil
	})
	for i := range out {
		out[i].Source = m.source
	}
	return out, err
}

// WithDigest is the entry of the manifest dgst, parent resolved, in the
// repository first in byte order that has it.
func (m *Mirror) WithDigest(ctx context.Context, dgst string) (api.FindEntry, bool, error) {
	var e api.FindEntry
	var found bool
	_, err := m.view(ctx, func(b *buckets) error {
		if e, found = b.Buckets.WithDigest("", dgst); !found {
			return nil
		}
		r, err := b.Get(e.Repository, dgst)
		if err != nil || r == nil {
			found = false
			return err
		}
		e = b.Resolve([]findindex.Record{*r})[0]
		return nil
	})
	e.Source = m.source
	return e, found, err
}
