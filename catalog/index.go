package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/find/findindex"
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

// indexChange is the value of v1/find/changes/<seq>: the last change of
// one entry.
type indexChange struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Removed    bool   `json:"removed,omitempty"`
}

// findBuckets are the buckets of the index in one transaction: the
// entries (findindex), the tags that point at each entry's manifest, the
// change feed and the state.
type findBuckets struct {
	findindex.Buckets
	tags, changes, state *bolt.Bucket
}

func getFindBuckets(tx *bolt.Tx) (findBuckets, error) {
	b := findBuckets{
		Buckets: findindex.Buckets{
			Entries: meta.GetFindBucket(tx, meta.FindEntries),
			Names:   meta.GetFindBucket(tx, meta.FindNames),
			Digests: meta.GetFindBucket(tx, meta.FindDigests),
		},
		tags:    meta.GetFindBucket(tx, meta.FindTags),
		changes: meta.GetFindBucket(tx, meta.FindChanges),
		state:   meta.GetFindBucket(tx, meta.FindState),
	}
	if b.Entries == nil || b.Names == nil || b.Digests == nil || b.tags == nil || b.changes == nil || b.state == nil {
		return b, fmt.Errorf("the find index buckets are missing: the database predates schema version 3")
	}
	// The feed only appends (its keys are increasing sequence numbers), so
	// its pages can be filled: at bbolt's default of half, appends leave
	// every page half empty.
	b.changes.FillPercent = 1.0
	return b, nil
}

// tagKey is the key of a tag of an entry in v1/find/tags.
func tagKey(repo string, dgst digest.Digest, tag string) []byte {
	return findindex.Join(repo, string(dgst), tag)
}

// tagsOf lists the tags that point at dgst in repo, from the index.
func (b findBuckets) tagsOf(repo string, dgst digest.Digest) []string {
	prefix := append(findindex.EntryKey(repo, string(dgst)), 0)
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
	if err := b.update(rb, repo, dgst); err != nil {
		return err
	}
	return b.updateSigned(rb, repo, tag)
}

// updateSigned updates the entry of the image that a signature tag names,
// whose Signatures flag the tag sets.
func (b findBuckets) updateSigned(rb *bolt.Bucket, repo, tag string) error {
	if target, ok := find.SignatureTarget(tag); ok {
		return b.update(rb, repo, digest.Digest(target))
	}
	return nil
}

// removeTag records that tag no longer points at dgst in repo.
func (b findBuckets) removeTag(rb *bolt.Bucket, repo, tag string, dgst digest.Digest) error {
	if err := b.tags.Delete(tagKey(repo, dgst, tag)); err != nil {
		return err
	}
	if err := b.update(rb, repo, dgst); err != nil {
		return err
	}
	return b.updateSigned(rb, repo, tag)
}

// update makes the entry of repo and dgst what the manifest record in rb
// (nil when the repository is gone) and its tags say: written, changed,
// or removed when the manifest is gone, untagged or not an image. A real
// change takes a new sequence number in the change feed.
func (b findBuckets) update(rb *bolt.Bucket, repo string, dgst digest.Digest) error {
	old, err := b.Get(repo, string(dgst))
	if err != nil {
		return err
	}
	var rec ManifestRecord
	var ok bool
	if rb != nil {
		if rec, ok, err = getRecord(rb, dgst); err != nil {
			return err
		}
	}
	tags := b.tagsOf(repo, dgst)
	if !ok || len(tags) == 0 || rec.Kind != KindImage {
		if old == nil {
			return nil
		}
		return b.remove(old)
	}
	fm := rec.FindManifest(repo, tags)
	fm.Signatures = meta.GetTagsBucket(rb).Get([]byte(find.SignatureTag(string(dgst)))) != nil
	next := findindex.NewRecord(fm)
	if old != nil {
		same := *old
		same.Seq = 0
		if same.Same(next) {
			return nil
		}
		if err := b.changes.Delete(seqKey(old.Seq)); err != nil {
			return err
		}
	}
	if next.Seq, err = b.logChange(indexChange{Repository: repo, Digest: string(dgst)}); err != nil {
		return err
	}
	_, err = b.Put(next)
	return err
}

// remove deletes the entry of old, leaving a removal in the change feed
// in place of its last change.
func (b findBuckets) remove(old *findindex.Record) error {
	if _, err := b.Delete(old.Entry.Repository, old.Entry.Digest); err != nil {
		return err
	}
	if err := b.changes.Delete(seqKey(old.Seq)); err != nil {
		return err
	}
	_, err := b.logChange(indexChange{Repository: old.Entry.Repository, Digest: old.Entry.Digest, Removed: true})
	return err
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
		if err := b.ensureID(); err != nil {
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
	if err := b.ensureID(); err != nil {
		return b, err
	}
	if b.state.Get(meta.KeyFindRebuild) != nil {
		if err := r.buildIndex(ctx, tx, b); err != nil {
			return b, fmt.Errorf("find index: %w", err)
		}
	}
	return b, nil
}

// ensureID gives the index its random identity if it has none yet.
func (b findBuckets) ensureID() error {
	if b.state.Get(meta.KeyFindID) != nil {
		return nil
	}
	return b.state.Put(meta.KeyFindID, []byte(newID()))
}

// buildIndex builds the index from the repositories in tx.
func (r *Registry) buildIndex(ctx context.Context, tx *bolt.Tx, b findBuckets) error {
	// The feed loses its changes so far: a mirror that has not read them
	// all must resync.
	if err := b.state.Put(meta.KeyFindFloor, seqKey(b.changes.Sequence())); err != nil {
		return err
	}
	for _, bk := range []*bolt.Bucket{b.Entries, b.Names, b.Digests, b.tags, b.changes} {
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
	p, err := r.FindPage(ctx, o, "", 0)
	return p.Entries, err
}

// FindPage is one page of the answer of Find.
type FindPage struct {
	Entries []api.FindEntry
	// Next is the name to ask after for the next page; "" on the last.
	Next string
	// ETag is the entity tag of the state of the index that the page
	// was read from (see FindETag).
	ETag string
}

// FindPage answers as Find does. With n > 0 and no name, it is a page of
// the listing: the entries of at most n names (lower-cased, in order)
// after the name last, read by a range scan of the names. Since the rules
// keep or drop entries within one name, the pages together answer as the
// whole listing does, except that a page is never a NoMatch error: a
// RequiredVersion that no name of a page has gives an empty page.
func (r *Registry) FindPage(ctx context.Context, o find.Options, last string, n int) (FindPage, error) {
	if err := o.Validate(); err != nil {
		return FindPage{}, err
	}
	name := strings.TrimSpace(o.Name)
	if name != "" || n <= 0 {
		last, n = "", 0
	}
	page, ok, err := r.readFind(ctx, name, last, n)
	if err == nil && !ok {
		// A database the index does not cover yet (catalogd builds it at
		// start): build it once, in a write transaction, and read again.
		if _, err := r.BuildIndex(ctx); err != nil {
			return FindPage{}, fmt.Errorf("find index: %w", err)
		}
		page, _, err = r.readFind(ctx, name, last, n)
	}
	if err != nil {
		return FindPage{}, err
	}
	page.Entries, err = find.Filter(page.Entries, o)
	if err != nil && n > 0 && errdefs.IsNotFound(err) {
		page.Entries, err = []api.FindEntry{}, nil
	}
	return page, err
}

// FindETag is the entity tag of the index as it is now: the index's
// identity and the change feed's sequence, which every change of an
// entry, and so of an answer, moves on.
func (r *Registry) FindETag(ctx context.Context) (string, error) {
	var tag string
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		b, err := getFindBuckets(tx)
		if err != nil {
			return err
		}
		tag = b.etag()
		return nil
	})
	return tag, err
}

func (b findBuckets) etag() string {
	return fmt.Sprintf(`"find-%s-%d"`, b.state.Get(meta.KeyFindID), b.changes.Sequence())
}

// readFind reads, in one read transaction, the candidates of name, or a
// page of the names with n > 0, with their parents; false when the index
// must be built first.
func (r *Registry) readFind(ctx context.Context, name, last string, n int) (FindPage, bool, error) {
	var page FindPage
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
		var recs []findindex.Record
		if n > 0 {
			var more bool
			var end string
			if recs, end, more, err = b.NamePage(strings.ToLower(last), n); more {
				page.Next = end
			}
		} else {
			recs, err = b.Candidates(name)
		}
		if err != nil {
			return err
		}
		page.Entries = b.Resolve(recs)
		page.ETag = b.etag()
		return nil
	})
	return page, ok, err
}

// Changes reads the change feed after the sequence number since: at most
// n changes (n > 0), in order, each the last change of an entry, with the
// entry as it now is. Since 0 lists every entry. A since that the feed
// cannot answer from (before the floor that a rebuild leaves, or beyond
// the feed's sequence: another index) gives Resync.
func (r *Registry) Changes(ctx context.Context, since uint64, n int) (api.FindChanges, error) {
	out := api.FindChanges{Changes: []api.FindChange{}}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		b, err := getFindBuckets(tx)
		if err != nil {
			return err
		}
		out.Index = string(b.state.Get(meta.KeyFindID))
		seq := b.changes.Sequence()
		var floor uint64
		if v := b.state.Get(meta.KeyFindFloor); len(v) == 8 {
			floor = binary.BigEndian.Uint64(v)
		}
		if b.state.Get(meta.KeyFindRebuild) != nil || (since > 0 && (since < floor || since > seq)) {
			out.Resync = true
			return nil
		}
		out.Last = seq
		c := b.changes.Cursor()
		for k, v := c.Seek(seqKey(since + 1)); k != nil; k, v = c.Next() {
			if len(out.Changes) == n {
				out.More = true
				out.Last = out.Changes[n-1].Seq
				return nil
			}
			var ic indexChange
			if err := json.Unmarshal(v, &ic); err != nil {
				return fmt.Errorf("find change %x: %w", k, err)
			}
			ch := api.FindChange{Seq: binary.BigEndian.Uint64(k), Repository: ic.Repository, Digest: ic.Digest, Removed: ic.Removed}
			if !ic.Removed {
				rec, err := b.Get(ic.Repository, ic.Digest)
				if err != nil {
					return err
				}
				if rec == nil {
					return fmt.Errorf("find change %d: no entry %s@%s", ch.Seq, ic.Repository, ic.Digest)
				}
				e := rec.Entry
				ch.Entry, ch.BaseName, ch.BaseDigest = &e, rec.BaseName, rec.BaseDigest
			}
			out.Changes = append(out.Changes, ch)
		}
		return nil
	})
	if err != nil {
		return api.FindChanges{}, err
	}
	return out, nil
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
	signed := map[string]bool{} // repository NUL digest
	for _, tm := range tms {
		if target, ok := find.SignatureTarget(tm.Tag); ok {
			signed[tm.Repository+"\x00"+target] = true
		}
		if tm.Manifest.Kind != KindImage {
			continue
		}
		ts = append(ts, find.Tagged{Tag: tm.Tag, Manifest: tm.Manifest.FindManifest(tm.Repository, nil)})
	}
	ms := find.Group(ts)
	for i := range ms {
		ms[i].Signatures = signed[ms[i].Repository+"\x00"+ms[i].Digest]
	}
	return ms, nil
}
