package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// The find index: the entries that Find answers from, kept in bbolt and
// changed in the transaction of each manifest put, tag put or delete that
// changes them, as zot keeps its RepoMeta. An entry is a tagged image
// manifest of a repository (find.IsImage); its record holds what find.Entry
// derives from the manifest record and the tags that point at it, and the
// base annotations, from which Find resolves the parent at query time by
// digest lookups. The keys (see store/meta) make an exact name, and the
// literal prefix of a wildcard, a range scan over names/ and over entries/
// (the repositories), and the version rules run over the entries found.

// indexEntry is the value of v1/find/entries/<repo> NUL <digest>.
type indexEntry struct {
	Entry      api.FindEntry `json:"entry"` // Parent is resolved at query time
	BaseName   string        `json:"baseName,omitempty"`
	BaseDigest string        `json:"baseDigest,omitempty"`
	// Seq is the key of the entry's last change in v1/find/changes.
	Seq uint64 `json:"seq"`
}

// indexChange is the value of v1/find/changes/<seq>: the last change of
// one entry.
type indexChange struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Removed    bool   `json:"removed,omitempty"`
}

// findBuckets are the buckets of the index in one transaction.
type findBuckets struct {
	entries, names, digests, tags, changes, state *bolt.Bucket
}

func getFindBuckets(tx *bolt.Tx) (findBuckets, error) {
	b := findBuckets{
		entries: meta.GetFindBucket(tx, meta.FindEntries),
		names:   meta.GetFindBucket(tx, meta.FindNames),
		digests: meta.GetFindBucket(tx, meta.FindDigests),
		tags:    meta.GetFindBucket(tx, meta.FindTags),
		changes: meta.GetFindBucket(tx, meta.FindChanges),
		state:   meta.GetFindBucket(tx, meta.FindState),
	}
	if b.entries == nil || b.names == nil || b.digests == nil || b.tags == nil || b.changes == nil || b.state == nil {
		return b, fmt.Errorf("the find index buckets are missing: the database predates schema version 3")
	}
	return b, nil
}

func join(parts ...string) []byte { return []byte(strings.Join(parts, "\x00")) }

// entryKey, nameKey, digestKey and tagKey are the keys of an entry in the
// buckets of the index.
func entryKey(repo string, dgst digest.Digest) []byte { return join(repo, string(dgst)) }
func nameKey(e api.FindEntry) []byte {
	return join(strings.ToLower(e.Name), e.Repository, e.Digest)
}
func digestKey(repo string, dgst digest.Digest) []byte { return join(string(dgst), repo) }
func tagKey(repo string, dgst digest.Digest, tag string) []byte {
	return join(repo, string(dgst), tag)
}

// tagsOf lists the tags that point at dgst in repo, from the index.
func (b findBuckets) tagsOf(repo string, dgst digest.Digest) []string {
	prefix := append(entryKey(repo, dgst), 0)
	var tags []string
	c := b.tags.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		tags = append(tags, string(k[len(prefix):]))
	}
	return tags
}

// setTag records that tag points at dgst in repo, and updates the entries
// of dgst and of the manifest the tag pointed at before, if another.
func (b findBuckets) setTag(rb *bolt.Bucket, repo, tag string, dgst digest.Digest, prev digest.Digest) error {
	if prev != "" && prev != dgst {
		if err := b.tags.Delete(tagKey(repo, prev, tag)); err != nil {
			return err
		}
		if err := b.update(rb, repo, prev); err != nil {
			return err
		}
	}
	if err := b.tags.Put(tagKey(repo, dgst, tag), []byte{}); err != nil {
		return err
	}
	return b.update(rb, repo, dgst)
}

// removeTag records that tag no longer points at dgst in repo.
func (b findBuckets) removeTag(rb *bolt.Bucket, repo, tag string, dgst digest.Digest) error {
	if err := b.tags.Delete(tagKey(repo, dgst, tag)); err != nil {
		return err
	}
	return b.update(rb, repo, dgst)
}

// update makes the entry of repo and dgst what the manifest record in rb
// (nil when the repository is gone) and its tags say: written, changed,
// or removed when the manifest is gone, untagged or not an image. A real
// change takes a new sequence number in the change feed.
func (b findBuckets) update(rb *bolt.Bucket, repo string, dgst digest.Digest) error {
	key := entryKey(repo, dgst)
	var old *indexEntry
	if v := b.entries.Get(key); v != nil {
		old = &indexEntry{}
		if err := json.Unmarshal(v, old); err != nil {
			return fmt.Errorf("find index entry %s@%s: %w", repo, dgst, err)
		}
	}
	var rec ManifestRecord
	var ok bool
	if rb != nil {
		var err error
		if rec, ok, err = getRecord(rb, dgst); err != nil {
			return err
		}
	}
	tags := b.tagsOf(repo, dgst)
	if !ok || len(tags) == 0 || rec.Kind != KindImage {
		if old == nil {
			return nil
		}
		return b.remove(key, old)
	}
	m := rec.FindManifest(repo, tags)
	next := indexEntry{Entry: find.Entry(m)}
	next.BaseName, next.BaseDigest = find.BaseOf(m.Annotations)
	if old != nil {
		same := *old
		same.Seq = 0
		if sameEntry(same, next) {
			return nil
		}
		if err := b.unlink(old); err != nil {
			return err
		}
	}
	seq, err := b.logChange(indexChange{Repository: repo, Digest: string(dgst)})
	if err != nil {
		return err
	}
	next.Seq = seq
	val, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := b.entries.Put(key, val); err != nil {
		return err
	}
	if err := b.names.Put(nameKey(next.Entry), []byte{}); err != nil {
		return err
	}
	return b.digests.Put(digestKey(repo, dgst), []byte{})
}

// sameEntry compares two entries, their times as instants.
func sameEntry(a, b indexEntry) bool {
	if !a.Entry.Created.Equal(b.Entry.Created) {
		return false
	}
	a.Entry.Created, b.Entry.Created = time.Time{}, time.Time{}
	return a.Entry == b.Entry && a.BaseName == b.BaseName && a.BaseDigest == b.BaseDigest && a.Seq == b.Seq
}

// remove deletes the entry at key, leaving a removal in the change feed.
func (b findBuckets) remove(key []byte, old *indexEntry) error {
	if err := b.unlink(old); err != nil {
		return err
	}
	if err := b.entries.Delete(key); err != nil {
		return err
	}
	_, err := b.logChange(indexChange{Repository: old.Entry.Repository, Digest: old.Entry.Digest, Removed: true})
	return err
}

// unlink deletes the name and digest keys and the last change of old.
func (b findBuckets) unlink(old *indexEntry) error {
	if err := b.names.Delete(nameKey(old.Entry)); err != nil {
		return err
	}
	if err := b.digests.Delete(digestKey(old.Entry.Repository, digest.Digest(old.Entry.Digest))); err != nil {
		return err
	}
	return b.changes.Delete(seqKey(old.Seq))
}

// logChange appends c to the change feed and returns its sequence number.
func (b findBuckets) logChange(c indexChange) (uint64, error) {
	seq, err := b.changes.NextSequence()
	if err != nil {
		return 0, err
	}
	val, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	return seq, b.changes.Put(seqKey(seq), val)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// FindManifest is what the find rules read of the record of a manifest of
// repo, with the tags that point at it.
func (m ManifestRecord) FindManifest(repo string, tags []string) find.Manifest {
	return find.Manifest{
		Repository:  repo,
		Digest:      m.Digest.String(),
		Tags:        tags,
		Annotations: m.Annotations,
		Size:        m.ContentSize,
		OSVersion:   m.OSVersion,
		Pushed:      m.Pushed,
	}
}

// BuildIndex builds the find index from the repositories when the
// database says that it does not cover them (a database of an earlier
// schema, migrated at open), in one transaction, and reports whether it
// did. Records written before the index have no Kind: their manifests are
// read from the content store and parsed again to tell images from
// artifacts, and the Kind is written into the records.
func (r *Registry) BuildIndex(ctx context.Context) (bool, error) {
	var built bool
	err := r.db.Update(ctx, func(tx *bolt.Tx) error {
		b, err := getFindBuckets(tx)
		if err != nil {
			return err
		}
		built = b.state.Get(meta.KeyFindRebuild) != nil
		if !built {
			return nil
		}
		return r.buildIndex(ctx, tx, b)
	})
	return built, err
}

// writeIndex returns the index buckets for a write transaction, building
// the index first when it does not cover the repositories yet, so that no
// write meets an index that misses what it changes.
func (r *Registry) writeIndex(ctx context.Context, tx *bolt.Tx) (findBuckets, error) {
	b, err := getFindBuckets(tx)
	if err != nil {
		return b, err
	}
	if b.state.Get(meta.KeyFindRebuild) != nil {
		if err := r.buildIndex(ctx, tx, b); err != nil {
			return b, fmt.Errorf("find index: %w", err)
		}
	}
	return b, nil
}

// buildIndex builds the index from the repositories in tx.
func (r *Registry) buildIndex(ctx context.Context, tx *bolt.Tx, b findBuckets) error {
	for _, bk := range []*bolt.Bucket{b.entries, b.names, b.digests, b.tags, b.changes} {
		if err := clearBucket(bk); err != nil {
			return err
		}
	}
	repos := meta.GetRepositoriesBucket(tx)
	err := repos.ForEachBucket(func(name []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		repo := string(name)
		rb := repos.Bucket(name)
		if err := r.fillKinds(ctx, rb); err != nil {
			return fmt.Errorf("repository %s: %w", repo, err)
		}
		var dgsts []digest.Digest
		seen := map[digest.Digest]bool{}
		err := meta.GetTagsBucket(rb).ForEach(func(tag, v []byte) error {
			d := digest.Digest(v)
			if !seen[d] {
				seen[d] = true
				dgsts = append(dgsts, d)
			}
			return b.tags.Put(tagKey(repo, d, string(tag)), []byte{})
		})
		if err != nil {
			return err
		}
		for _, d := range dgsts {
			if err := b.update(rb, repo, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return b.state.Delete(meta.KeyFindRebuild)
}

// fillKinds writes the Kind of every record of rb that has none, from the
// manifest bytes in the content store.
func (r *Registry) fillKinds(ctx context.Context, rb *bolt.Bucket) error {
	manifests := meta.GetManifestsBucket(rb)
	type fix struct {
		key []byte
		rec ManifestRecord
	}
	var fixes []fix
	err := manifests.ForEach(func(k, v []byte) error {
		var rec ManifestRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("manifest record %s: %w", k, err)
		}
		if rec.Kind != "" {
			return nil
		}
		kind, err := r.kindOf(ctx, rec)
		if err != nil {
			return err
		}
		rec.Kind = kind
		fixes = append(fixes, fix{bytes.Clone(k), rec})
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range fixes {
		val, err := json.Marshal(f.rec)
		if err != nil {
			return err
		}
		if err := manifests.Put(f.key, val); err != nil {
			return err
		}
	}
	return nil
}

// kindOf parses the stored manifest of rec to find its Kind.
func (r *Registry) kindOf(ctx context.Context, rec ManifestRecord) (string, error) {
	ra, err := r.cs.ReaderAt(ctx, rec.Digest)
	if err != nil {
		return "", fmt.Errorf("manifest %s: %w", rec.Digest, err)
	}
	defer ra.Close()
	body, err := io.ReadAll(io.LimitReader(content.NewSectionReader(ra), r.maxManifestSize+1))
	if err != nil {
		return "", fmt.Errorf("manifest %s: %w", rec.Digest, err)
	}
	m, err := parseManifest(rec.Digest, rec.MediaType, body)
	if err != nil {
		return KindArtifact, nil // stored once, unreadable now: not an image Find can offer
	}
	return m.kind(), nil
}

// clearBucket deletes every key of b. Its sequence goes on, so that the
// change feed never hands out a number twice.
func clearBucket(b *bolt.Bucket) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Find answers Find-ContainerImage (find.Filter's rules and errors) from
// the index: an exact name, or the literal prefix of a wildcard (what comes
// before the first * or ?), is a range scan over the names and the
// repositories, and the version rules run over the entries it finds. A
// name that starts with a wildcard, or none, reads every entry. Parents
// are resolved by digest lookups.
func (r *Registry) Find(ctx context.Context, o find.Options) ([]api.FindEntry, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	entries, ok, err := r.findEntries(ctx, o.Name)
	if err == nil && !ok {
		// A database the index does not cover yet (catalogd builds it at
		// start): build it once, in a write transaction, and read again.
		if _, err := r.BuildIndex(ctx); err != nil {
			return nil, fmt.Errorf("find index: %w", err)
		}
		entries, _, err = r.findEntries(ctx, o.Name)
	}
	if err != nil {
		return nil, err
	}
	return find.Filter(entries, o)
}

// findEntries reads, in one read transaction, the candidates of name with
// their parents; false when the index must be built first.
func (r *Registry) findEntries(ctx context.Context, name string) ([]api.FindEntry, bool, error) {
	var entries []api.FindEntry
	ok := true
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		b, err := getFindBuckets(tx)
		if err != nil {
			return err
		}
		if b.state.Get(meta.KeyFindRebuild) != nil {
			ok = false
			return nil
		}
		recs, err := b.candidates(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		entries = make([]api.FindEntry, 0, len(recs))
		for _, rec := range recs {
			e := rec.Entry
			e.Parent = find.Parent(rec.BaseName, rec.BaseDigest, b)
			entries = append(entries, e)
		}
		return nil
	})
	return entries, ok, err
}

// candidates are the entries whose name or repository may match the
// pattern name: those that start with its literal prefix, or, without a
// wildcard, that equal it.
func (b findBuckets) candidates(name string) ([]indexEntry, error) {
	prefix := strings.ToLower(name)
	if i := strings.IndexAny(prefix, "*?"); i >= 0 {
		prefix = prefix[:i]
	} else if prefix != "" {
		prefix += "\x00"
	}
	var out []indexEntry
	seen := map[string]bool{}
	add := func(key []byte) error {
		if seen[string(key)] {
			return nil
		}
		seen[string(key)] = true
		v := b.entries.Get(key)
		if v == nil {
			return fmt.Errorf("find index: no entry %q for a name key", key)
		}
		var e indexEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("find index entry %q: %w", key, err)
		}
		out = append(out, e)
		return nil
	}
	p := []byte(prefix)
	c := b.names.Cursor()
	if prefix == "" {
		c = nil // every entry: entries/ alone lists them
	}
	for k, _ := seek(c, p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("find index: bad name key %q", k)
		}
		if err := add(join(string(parts[1]), string(parts[2]))); err != nil {
			return nil, err
		}
	}
	c = b.entries.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if err := add(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// seek is c.Seek(p), or nothing for a nil cursor.
func seek(c *bolt.Cursor, p []byte) ([]byte, []byte) {
	if c == nil {
		return nil, nil
	}
	return c.Seek(p)
}

// WithDigest implements find.Entries over the index.
func (b findBuckets) WithDigest(repo, dgst string) (api.FindEntry, bool) {
	if repo != "" {
		return b.entryAt(entryKey(repo, digest.Digest(dgst)))
	}
	p := append([]byte(dgst), 0)
	k, _ := b.digests.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) {
		return api.FindEntry{}, false
	}
	return b.entryAt(entryKey(string(k[len(p):]), digest.Digest(dgst)))
}

// InRepository implements find.Entries over the index.
func (b findBuckets) InRepository(repo string) (api.FindEntry, bool) {
	p := append([]byte(repo), 0)
	k, _ := b.entries.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) {
		return api.FindEntry{}, false
	}
	return b.entryAt(k)
}

func (b findBuckets) entryAt(key []byte) (api.FindEntry, bool) {
	v := b.entries.Get(key)
	if v == nil {
		return api.FindEntry{}, false
	}
	var e indexEntry
	if json.Unmarshal(v, &e) != nil {
		return api.FindEntry{}, false
	}
	return e.Entry, true
}

// FindManifests lists every tagged manifest as the find rules read it, by
// a scan of the repositories, not of the index: find.Index over it is the
// reference that the index must agree with.
func (r *Registry) FindManifests(ctx context.Context) ([]find.Manifest, error) {
	tms, err := r.TaggedManifests(ctx)
	if err != nil {
		return nil, err
	}
	var ts []find.Tagged
	for _, tm := range tms {
		if tm.Manifest.Kind != KindImage {
			continue
		}
		ts = append(ts, find.Tagged{Tag: tm.Tag, Manifest: tm.Manifest.FindManifest(tm.Repository, nil)})
	}
	return find.Group(ts), nil
}
