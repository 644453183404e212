package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/meta"
)

// minIDPrefix is the shortest id prefix that names an image.
const minIDPrefix = 4

// versionFilter is OneGet's version options over installed images, where no
// option means every version.
type versionFilter struct {
	required, min, max *goversion.Version
}

// newVersionFilter validates v with OneGet's rules (InvalidArgument with
// OneGet's text) and parses it.
func newVersionFilter(v api.VersionOptions) (versionFilter, error) {
	if err := findOptions("", v).Validate(); err != nil {
		return versionFilter{}, err
	}
	var f versionFilter
	for _, o := range []struct {
		s   string
		dst **goversion.Version
	}{
		{v.RequiredVersion, &f.required},
		{v.MinimumVersion, &f.min},
		{v.MaximumVersion, &f.max},
	} {
		if s := strings.TrimSpace(o.s); s != "" {
			*o.dst, _ = goversion.NewVersion(s) // Validate parsed it
		}
	}
	return f, nil
}

func (f versionFilter) any() bool { return f.required != nil || f.min != nil || f.max != nil }

// match keeps every version when no option is given, else the versions
// that parse and fit the bounds (inclusive).
func (f versionFilter) match(version string) bool {
	if !f.any() {
		return true
	}
	v, err := goversion.NewVersion(version)
	if err != nil {
		return false
	}
	switch {
	case f.required != nil && !v.Equal(f.required):
		return false
	case f.min != nil && v.LessThan(f.min):
		return false
	case f.max != nil && v.GreaterThan(f.max):
		return false
	}
	return true
}

// publisherMatches compares publishers case-insensitively, with or without
// their "CN=" prefix, so that "Demo" finds "CN=Demo". want may hold the
// wildcards * and ?.
func publisherMatches(want, have string) bool {
	return find.MatchName(trimCN(want), trimCN(have))
}

func trimCN(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 3 && strings.EqualFold(s[:3], "CN=") {
		return strings.TrimSpace(s[3:])
	}
	return s
}

// Images lists the installed images that match opts.
//
// Name matches the display name or the repository, case-insensitively,
// with the wildcards * and ?. Publisher matches with or without "CN=".
// With no version option every installed version is listed; the options
// are validated with OneGet's rules (InvalidArgument). ChildOf keeps the
// images whose parent is the image it names (see resolveImages); NotFound
// if it names no installed image. The result is sorted by name, then
// version, and is never nil.
func (p *Provider) Images(ctx context.Context, opts GetOptions) ([]api.Image, error) {
	vf, err := newVersionFilter(opts.VersionOptions)
	if err != nil {
		return nil, err
	}
	if opts.SelectsAll() {
		return p.allImages(ctx)
	}
	name := strings.TrimSpace(opts.Name)
	childOf := strings.TrimSpace(opts.ChildOf)
	var recs []imageRecord
	var raws []rawRecord
	var refs map[digest.Digest][]string
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		if name != "" && !find.HasWildcard(name) && childOf == "" {
			// A name is a range scan of the name index, and its refs
			// range scans of the refs by digest.
			if recs, err = imagesNamed(tx, name); err != nil {
				return err
			}
			refs = map[digest.Digest][]string{}
			for _, r := range recs {
				refs[r.Digest] = refsOf(tx, r.Digest)
			}
			return nil
		}
		if raws, err = copyImageRecords(tx); err != nil {
			return err
		}
		refs, err = listRefs(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if raws != nil {
		// Decoded after the transaction, which stays short.
		if recs, err = decodeImageHeads(raws); err != nil {
			return nil, err
		}
	}
	var parents map[digest.Digest]bool
	if s := childOf; s != "" {
		sel, err := resolveImages(recs, s)
		if err != nil {
			return nil, fmt.Errorf("child of: %w", err)
		}
		parents = map[digest.Digest]bool{}
		for _, r := range sel {
			parents[r.Digest] = true
		}
	}
	out := []api.Image{}
	for i := range recs {
		r := &recs[i]
		if name != "" && !find.MatchName(name, r.Name) && !find.MatchName(name, r.Repository) {
			continue
		}
		if opts.Publisher != "" && !publisherMatches(opts.Publisher, r.Publisher) {
			continue
		}
		if !vf.match(r.Version) {
			continue
		}
		if parents != nil && (r.Parent == nil || !parents[digest.Digest(r.Parent.Digest)]) {
			continue
		}
		out = append(out, r.image(refs[r.Digest]))
	}
	sortImages(out)
	return out, nil
}

// SelectsAll reports whether o selects every installed image: no name,
// publisher, parent or version bound (AllVersions alone changes nothing,
// since Images lists every version).
func (o GetOptions) SelectsAll() bool {
	for _, s := range []string{o.Name, o.Publisher, o.ChildOf, o.RequiredVersion, o.MinimumVersion, o.MaximumVersion} {
		if strings.TrimSpace(s) != "" {
			return false
		}
	}
	return true
}

// ImagePage is a page of the listing of every installed image.
type ImagePage struct {
	// Images are in the order of Images, each the JSON of an api.Image as
	// the listing view keeps it, not decoded.
	Images []json.RawMessage
	// Next, when not empty, is the after of the next page.
	Next string
}

// ImagesPage reads at most n images of the listing of every installed
// image (Images with no option), after the cursor after ("" for the
// first page), from the listing view: a range of one short read
// transaction, and no record decoded. A caller that reads every page sees
// each image that stayed installed throughout exactly once.
func (p *Provider) ImagesPage(ctx context.Context, after string, n int) (ImagePage, error) {
	if n <= 0 {
		return ImagePage{}, fmt.Errorf("page of %d images: %w", n, errdefs.ErrInvalidArgument)
	}
	var page ImagePage
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var last []byte
		c := meta.GetImageListBucket(tx).Cursor()
		k, v := c.First()
		if after != "" {
			if k, v = c.Seek([]byte(after)); k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(page.Images) == n {
				page.Next = string(last)
				return nil
			}
			page.Images = append(page.Images, bytes.Clone(v))
			last = k
		}
		return nil
	})
	return page, err
}

// allImages is Images with no option: the listing view, read by pages and
// decoded by as many goroutines as there are CPUs, already in order.
func (p *Provider) allImages(ctx context.Context) ([]api.Image, error) {
	var raws []json.RawMessage
	after := ""
	for {
		page, err := p.ImagesPage(ctx, after, listPage)
		if err != nil {
			return nil, err
		}
		raws = append(raws, page.Images...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	out := make([]api.Image, len(raws))
	errs := make([]error, len(raws))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(raws)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raws); i += workers {
				errs[i] = json.Unmarshal(raws[i], &out[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("listing view: %w", err)
	}
	return out, nil
}

// listPage is the number of images that allImages reads per transaction.
const listPage = 1000

// sortImages orders as the listing view does (meta.ImageListKey): by name
// (case-insensitive), then version (find.VersionKey), then digest. Each
// key is built once, not at each comparison.
func sortImages(images []api.Image) {
	type key struct {
		k []byte
		i int
	}
	keys := make([]key, len(images))
	for i, im := range images {
		keys[i] = key{meta.ImageListKey(im.Name, find.VersionKey(im.Version), im.Digest), i}
	}
	slices.SortFunc(keys, func(x, y key) int { return bytes.Compare(x.k, y.k) })
	sorted := make([]api.Image, len(images))
	for i, k := range keys {
		sorted[i] = images[k.i]
	}
	copy(images, sorted)
}

// isHex reports whether s is lower-case hexadecimal.
func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// resolveImages finds the installed images that ref names:
//   - a digest ("sha256:<hex>"): that image;
//   - at least minIDPrefix hex characters (optionally after "sha256:") that
//     begin the id of installed images: that image, which must be the only
//     one (else InvalidArgument listing them);
//   - otherwise a name, or "name:version": every version of that name, or
//     that version, matched like Get's Name.
//
// NotFound when ref names no installed image.
func resolveImages(recs []imageRecord, ref string) ([]imageRecord, error) {
	ref = strings.TrimSpace(ref)
	if d, err := digest.Parse(ref); err == nil {
		for _, r := range recs {
			if r.Digest == d {
				return []imageRecord{r}, nil
			}
		}
		return nil, fmt.Errorf("no installed image has digest %s: %w", d, errdefs.ErrNotFound)
	}
	prefix := strings.TrimPrefix(strings.ToLower(ref), string(digest.SHA256)+":")
	if len(prefix) >= minIDPrefix && isHex(prefix) {
		var hits []imageRecord
		for _, r := range recs {
			if strings.HasPrefix(r.Digest.Encoded(), prefix) {
				hits = append(hits, r)
			}
		}
		switch {
		case len(hits) == 1:
			return hits, nil
		case len(hits) > 1:
			var ids []string
			for _, h := range hits {
				ids = append(ids, fmt.Sprintf("%s (%s)", h.Digest.Encoded(), h.label()))
			}
			slices.Sort(ids)
			return nil, fmt.Errorf("id prefix %q is ambiguous: it begins %s: %w", prefix, strings.Join(ids, ", "), errdefs.ErrInvalidArgument)
		}
	}
	name, version := ref, ""
	if i := strings.LastIndex(ref, ":"); i > 0 {
		name, version = ref[:i], ref[i+1:]
	}
	var out []imageRecord
	for _, r := range recs {
		if !find.MatchName(name, r.Name) && !find.MatchName(name, r.Repository) {
			continue
		}
		if version != "" && version != latestTag && !sameVersion(version, r.Version) {
			continue
		}
		out = append(out, r)
	}
	if version == latestTag && len(out) > 0 {
		out = []imageRecord{highest(out)}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image %q is not installed: %w", ref, errdefs.ErrNotFound)
	}
	return out, nil
}

// highest returns the record with the highest version.
func highest(recs []imageRecord) imageRecord {
	best := recs[0]
	for _, r := range recs[1:] {
		a, b := r.parsedVersion(), best.parsedVersion()
		if a != nil && (b == nil || a.GreaterThan(b)) {
			best = r
		}
	}
	return best
}
