// Package findindex is the find index kept in bbolt: Find entries keyed so
// that an exact name, and the literal prefix of a wildcard, are range
// scans, with parents resolved by digest lookups. catalogd keeps one over
// its repositories (catalog), and providerd one per source, a mirror of
// what the source publishes (provider). Both run the find rules
// (catalog/find) over what Candidates returns.
//
// The buckets, and the keys of one entry of repository <repo> and manifest
// digest <digest>, with NUL between the parts:
//
//	entries/  <repo> NUL <digest>                   -> Record (JSON)
//	names/    <lower-cased name> NUL <repo> NUL <digest> -> empty
//	digests/  <digest> NUL <repo>                   -> empty
package findindex

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// Record is the value of an entry: the Find entry without its parent,
// and the base annotations from which Parent resolves it at query time.
type Record struct {
	Entry      api.FindEntry `json:"entry"` // Parent is resolved at query time
	BaseName   string        `json:"baseName,omitempty"`
	BaseDigest string        `json:"baseDigest,omitempty"`
	// Seq is the sequence number of the entry's last change: catalogd's
	// change feed, or the source's, in a mirror.
	Seq uint64 `json:"seq,omitempty"`
}

// NewRecord is the record of a manifest as the find rules read it.
func NewRecord(m find.Manifest) Record {
	r := Record{Entry: find.Entry(m)}
	r.BaseName, r.BaseDigest = find.BaseOf(m.Annotations)
	return r
}

// Same reports whether two records say the same, times compared as
// instants.
func (r Record) Same(o Record) bool {
	if !r.Entry.Created.Equal(o.Entry.Created) {
		return false
	}
	r.Entry.Created, o.Entry.Created = time.Time{}, time.Time{}
	r.Entry.Parent, o.Entry.Parent = nil, nil
	return r.Entry == o.Entry && r.BaseName == o.BaseName && r.BaseDigest == o.BaseDigest && r.Seq == o.Seq
}

// Buckets are the buckets of one index in one transaction.
type Buckets struct {
	Entries, Names, Digests *bolt.Bucket
}

// Join joins key parts with NUL, which no repository, digest or tag holds.
func Join(parts ...string) []byte { return []byte(strings.Join(parts, "\x00")) }

// EntryKey is the key of the entry of repo and dgst in entries/.
func EntryKey(repo, dgst string) []byte { return Join(repo, dgst) }

func nameKey(e api.FindEntry) []byte {
	return Join(strings.ToLower(e.Name), e.Repository, e.Digest)
}

func digestKey(repo, dgst string) []byte { return Join(dgst, repo) }

// Get is the record of repo and dgst, nil when there is none.
func (b Buckets) Get(repo, dgst string) (*Record, error) {
	return decode(EntryKey(repo, dgst), b.Entries.Get(EntryKey(repo, dgst)))
}

func decode(key, v []byte) (*Record, error) {
	if v == nil {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("find index entry %q: %w", key, err)
	}
	return &r, nil
}

// Put writes r, replacing the entry of its repository and digest and
// its name and digest keys. It returns the record it replaced, if any.
func (b Buckets) Put(r Record) (*Record, error) {
	r.Entry.Parent = nil
	key := EntryKey(r.Entry.Repository, r.Entry.Digest)
	old, err := decode(key, b.Entries.Get(key))
	if err != nil {
		return nil, err
	}
	if old != nil {
		if err := b.unlink(old); err != nil {
			return nil, err
		}
	}
	val, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if err := b.Entries.Put(key, val); err != nil {
		return nil, err
	}
	if err := b.Names.Put(nameKey(r.Entry), []byte{}); err != nil {
		return nil, err
	}
	return old, b.Digests.Put(digestKey(r.Entry.Repository, r.Entry.Digest), []byte{})
}

// Delete removes the entry of repo and dgst and returns it; nil when
// there was none.
func (b Buckets) Delete(repo, dgst string) (*Record, error) {
	key := EntryKey(repo, dgst)
	old, err := decode(key, b.Entries.Get(key))
	if err != nil || old == nil {
		return nil, err
	}
	if err := b.unlink(old); err != nil {
		return nil, err
	}
	return old, b.Entries.Delete(key)
}

// unlink deletes the name and digest keys of old.
func (b Buckets) unlink(old *Record) error {
	if err := b.Names.Delete(nameKey(old.Entry)); err != nil {
		return err
	}
	return b.Digests.Delete(digestKey(old.Entry.Repository, old.Entry.Digest))
}

// Repository calls fn for each record of repo, in digest order. fn must
// not change the buckets.
func (b Buckets) Repository(repo string, fn func(Record) error) error {
	p := append([]byte(repo), 0)
	c := b.Entries.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		r, err := decode(k, v)
		if err != nil {
			return err
		}
		if err := fn(*r); err != nil {
			return err
		}
	}
	return nil
}

// Candidates are the records whose name or repository may match the
// pattern name (see find.Options.Name): those whose lower-cased name or
// whose repository starts with its literal prefix (what comes before the
// first * or ?), or, without a wildcard, equals it. An empty name, or
// one that starts with a wildcard, reads every entry.
func (b Buckets) Candidates(name string) ([]Record, error) {
	prefix := strings.ToLower(strings.TrimSpace(name))
	if i := strings.IndexAny(prefix, "*?"); i >= 0 {
		prefix = prefix[:i]
	} else if prefix != "" {
		prefix += "\x00"
	}
	var out []Record
	seen := map[string]bool{}
	add := func(key []byte) error {
		if seen[string(key)] {
			return nil
		}
		seen[string(key)] = true
		r, err := decode(key, b.Entries.Get(key))
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("find index: no entry %q for a name key", key)
		}
		out = append(out, *r)
		return nil
	}
	p := []byte(prefix)
	if prefix != "" { // without a prefix, entries/ alone lists every entry
		c := b.Names.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			parts := bytes.SplitN(k, []byte{0}, 3)
			if len(parts) != 3 {
				return nil, fmt.Errorf("find index: bad name key %q", k)
			}
			if err := add(Join(string(parts[1]), string(parts[2]))); err != nil {
				return nil, err
			}
		}
	}
	c := b.Entries.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if err := add(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NamePage is the records of at most n names (lower-cased) that come after
// the name after, in name order, for a listing that pages; more reports
// that names follow the last of the page.
func (b Buckets) NamePage(after string, n int) (recs []Record, last string, more bool, err error) {
	c := b.Names.Cursor()
	k, _ := c.Seek([]byte(after))
	names := 0
	for ; k != nil; k, _ = c.Next() {
		parts := bytes.SplitN(k, []byte{0}, 3)
		if len(parts) != 3 {
			return nil, "", false, fmt.Errorf("find index: bad name key %q", k)
		}
		name := string(parts[0])
		if after != "" && name <= after {
			continue
		}
		if name != last {
			if names == n {
				return recs, last, true, nil
			}
			names++
			last = name
		}
		key := Join(string(parts[1]), string(parts[2]))
		r, err := decode(key, b.Entries.Get(key))
		if err != nil {
			return nil, "", false, err
		}
		if r == nil {
			return nil, "", false, fmt.Errorf("find index: no entry %q for a name key", key)
		}
		recs = append(recs, *r)
	}
	return recs, last, false, nil
}

// Resolve is the entries of recs with their parents resolved in b.
func (b Buckets) Resolve(recs []Record) []api.FindEntry {
	out := make([]api.FindEntry, 0, len(recs))
	for _, r := range recs {
		e := r.Entry
		e.Parent = find.Parent(r.BaseName, r.BaseDigest, b)
		out = append(out, e)
	}
	return out
}

// WithDigest implements find.Entries.
func (b Buckets) WithDigest(repo, dgst string) (api.FindEntry, bool) {
	if repo != "" {
		return b.entryAt(EntryKey(repo, dgst))
	}
	p := append([]byte(dgst), 0)
	k, _ := b.Digests.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) {
		return api.FindEntry{}, false
	}
	return b.entryAt(EntryKey(string(k[len(p):]), dgst))
}

// InRepository implements find.Entries.
func (b Buckets) InRepository(repo string) (api.FindEntry, bool) {
	p := append([]byte(repo), 0)
	k, _ := b.Entries.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) {
		return api.FindEntry{}, false
	}
	return b.entryAt(k)
}

func (b Buckets) entryAt(key []byte) (api.FindEntry, bool) {
	r, err := decode(key, b.Entries.Get(key))
	if err != nil || r == nil {
		return api.FindEntry{}, false
	}
	return r.Entry, true
}
