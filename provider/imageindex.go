package provider

import (
	"strconv"
	"strings"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
)

// imageIndex indexes image records by the keys that the checks of an
// install from an archive look up, so that each check is a map lookup
// rather than a walk of the records. It is built once per transaction and
// grows with the records the transaction writes.
type imageIndex struct {
	byDigest map[digest.Digest]imageRecord
	// byName lists, by lower-case display name and repository, the
	// digests of the images that have it.
	byName map[string][]digest.Digest
	// byVersion is the image of each repository and version (as
	// versionKey folds it).
	byVersion map[string]digest.Digest
	// fromArchive marks the images of the archive being installed, which
	// a parent named without a digest is looked up among first.
	fromArchive map[digest.Digest]bool
}

func newImageIndex(recs []imageRecord) *imageIndex {
	ix := &imageIndex{
		byDigest:    make(map[digest.Digest]imageRecord, len(recs)),
		byName:      make(map[string][]digest.Digest, 2*len(recs)),
		byVersion:   make(map[string]digest.Digest, len(recs)),
		fromArchive: map[digest.Digest]bool{},
	}
	for _, r := range recs {
		ix.add(r)
	}
	return ix
}

// add indexes rec.
func (ix *imageIndex) add(rec imageRecord) {
	ix.byDigest[rec.Digest] = rec
	name, repo := strings.ToLower(rec.Name), strings.ToLower(rec.Repository)
	ix.byName[name] = append(ix.byName[name], rec.Digest)
	if repo != name {
		ix.byName[repo] = append(ix.byName[repo], rec.Digest)
	}
	key := rec.Repository + "\x00" + versionKey(rec.Version)
	if _, ok := ix.byVersion[key]; !ok {
		ix.byVersion[key] = rec.Digest
	}
}

// sameName finds the image of repository repo and version version, the
// versions compared as sameVersion compares them.
func (ix *imageIndex) sameName(repo, version string) (imageRecord, bool) {
	d, ok := ix.byVersion[repo+"\x00"+versionKey(version)]
	if !ok {
		return imageRecord{}, false
	}
	return ix.byDigest[d], true
}

// findBase finds the parent that base names: by digest when it has one,
// else by name or repository (case-insensitively) and version, first among
// the images of the archive, then among the installed ones.
func (ix *imageIndex) findBase(base api.ParentRef) (imageRecord, bool) {
	if base.Digest != "" {
		r, ok := ix.byDigest[digest.Digest(base.Digest)]
		return r, ok
	}
	if base.Name == "" {
		return imageRecord{}, false
	}
	var installed *imageRecord
	for _, d := range ix.byName[strings.ToLower(base.Name)] {
		r := ix.byDigest[d]
		if !sameVersion(base.Version, r.Version) {
			continue
		}
		if ix.fromArchive[d] {
			return r, true
		}
		if installed == nil {
			installed = &r
		}
	}
	if installed != nil {
		return *installed, true
	}
	return imageRecord{}, false
}

// versionKey folds a version so that two versions have the same key
// exactly when sameVersion finds them equal: the numeric segments without
// their trailing zeros ("1.0" and "1.0.0.0" are "1") and the pre-release,
// or, for a version that does not parse, its text.
func versionKey(v string) string {
	pv, err := goversion.NewVersion(v)
	if err != nil {
		return "=" + v
	}
	segs := pv.Segments64()
	n := len(segs)
	for n > 0 && segs[n-1] == 0 {
		n--
	}
	var b strings.Builder
	for i, s := range segs[:n] {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatInt(s, 10))
	}
	if pre := pv.Prerelease(); pre != "" {
		b.WriteString("-" + pre)
	}
	return b.String()
}
