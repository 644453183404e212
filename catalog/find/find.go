// Package find implements the rules of Find-ContainerImage over a list of
// catalog entries: OneGet's version options, name wildcards, the latest
// version of each name, and OneGet's error texts. It does no I/O, so
// catalogd's find extension and providerd (across its sources) apply the
// same rules.
//
// Index turns the tagged manifests of a registry into entries; Filter
// selects among them.
package find

import (
	"cmp"
	"slices"
	"strings"

	goversion "github.com/hashicorp/go-version"

	"github.com/containerprovider/containerprovider/api"
)

// Options are the parameters of Find-ContainerImage. Empty strings (or
// strings of white space) mean the option is not given.
type Options struct {
	// Name matches an entry's Name or Repository, case-insensitively. It
	// may hold the wildcards * (any run of characters) and ? (any one
	// character); every other character is literal.
	Name string
	// RequiredVersion selects exactly that version (compared numerically).
	RequiredVersion string
	// MinimumVersion and MaximumVersion bound the version, inclusively.
	MinimumVersion string
	MaximumVersion string
	// AllVersions returns every version instead of the latest one of each
	// name.
	AllVersions bool
}

// versions are the parsed version options; nil means not given.
type versions struct {
	required, min, max *goversion.Version
}

func (v versions) any() bool { return v.required != nil || v.min != nil || v.max != nil }

// Validate checks the option rules of OneGet, in OneGet's order:
//   - every version given must parse (InvalidVersion);
//   - AllVersions cannot be combined with RequiredVersion
//     (AllVersionsCannotBeUsedWithOtherVersionParameters);
//   - RequiredVersion cannot be combined with MinimumVersion or
//     MaximumVersion (VersionRangeAndRequiredVersionCannotBeSpecifiedTogether);
//   - MinimumVersion must not be greater than MaximumVersion
//     (MinimumVersionMustBeLessThanMaximumVersion).
//
// Unlike OneGet, AllVersions may be combined with MinimumVersion and
// MaximumVersion: it then returns every version within the bounds.
//
// The error is a *Error of class errdefs.ErrInvalidArgument whose text is
// OneGet's.
func (o Options) Validate() error {
	_, err := o.parse()
	return err
}

func (o Options) parse() (versions, error) {
	var v versions
	for _, f := range []struct {
		s   string
		dst **goversion.Version
	}{
		{o.RequiredVersion, &v.required},
		{o.MinimumVersion, &v.min},
		{o.MaximumVersion, &v.max},
	} {
		s := strings.TrimSpace(f.s)
		if s == "" {
			continue
		}
		p, err := goversion.NewVersion(s)
		if err != nil {
			return versions{}, invalidArgument(IDInvalidVersion, msgInvalidVersion, s, err.Error())
		}
		*f.dst = p
	}
	if o.AllVersions && v.required != nil {
		return versions{}, invalidArgument(IDAllVersionsCannotBeUsedWithOtherVersionParameters,
			msgAllVersionsCannotBeUsedWithOtherVersionParameters)
	}
	if v.required != nil && (v.min != nil || v.max != nil) {
		return versions{}, invalidArgument(IDVersionRangeAndRequiredVersionCannotBeSpecifiedTogether,
			msgVersionRangeAndRequiredVersionCannotBeSpecifiedTogether)
	}
	if v.min != nil && v.max != nil && v.min.GreaterThan(v.max) {
		return versions{}, invalidArgument(IDMinimumVersionMustBeLessThanMaximumVersion,
			msgMinimumVersionMustBeLessThanMaximumVersion,
			strings.TrimSpace(o.MinimumVersion), strings.TrimSpace(o.MaximumVersion))
	}
	return v, nil
}

// candidate is an entry with its parsed version (nil when it does not parse).
type candidate struct {
	e api.FindEntry
	v *goversion.Version
}

func newCandidate(e api.FindEntry) candidate {
	v, err := goversion.NewVersion(e.Version)
	if err != nil {
		v = nil
	}
	return candidate{e: e, v: v}
}

// Filter applies o to entries and returns a new slice; entries is not
// modified.
//
//   - Name matches Name or Repository (see Options.Name). An empty Name
//     matches everything.
//   - With no version option, only the latest version of each name is kept.
//     A name is the case-insensitive Name within one Repository and one
//     Source, so that providerd shows the latest image of each source.
//     Entries whose version does not parse are each kept.
//   - An image in several repositories of one source shows once (see
//     copiesDropped).
//   - RequiredVersion keeps the entries of that version, MinimumVersion and
//     MaximumVersion the ones within the bounds (inclusive); AllVersions
//     keeps every version instead of the latest. When a version option is
//     given, entries whose version does not parse are dropped.
//
// The result is sorted by Name (case-insensitive), then by version
// ascending. It is never nil.
//
// Errors: the *Error of Validate; a *Error of class errdefs.ErrNotFound
// (OneGet's NoMatchFoundForCriteria) when nothing is left and either Name
// has no wildcard or a RequiredVersion was given. A wildcard Name that
// matches nothing gives an empty list and no error, as in OneGet.
func Filter(entries []api.FindEntry, o Options) ([]api.FindEntry, error) {
	vs, err := o.parse()
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(o.Name)
	pattern := newPattern(name)

	var kept []candidate
	for _, e := range entries {
		if !pattern.match(e.Name) && !pattern.match(e.Repository) {
			continue
		}
		c := newCandidate(e)
		if vs.any() && (c.v == nil || !inRange(c.v, vs)) {
			continue
		}
		kept = append(kept, c)
	}
	kept = copiesDropped(kept)
	if !o.AllVersions {
		kept = latest(kept)
	}
	slices.SortStableFunc(kept, compareCandidates)

	out := make([]api.FindEntry, 0, len(kept))
	for _, c := range kept {
		out = append(out, c.e)
	}
	if len(out) == 0 && ((name != "" && !pattern.wild) || vs.required != nil) {
		return out, NoMatch(name, strings.TrimSpace(o.RequiredVersion))
	}
	return out, nil
}

func inRange(v *goversion.Version, vs versions) bool {
	if vs.required != nil && !v.Equal(vs.required) {
		return false
	}
	if vs.min != nil && v.LessThan(vs.min) {
		return false
	}
	if vs.max != nil && v.GreaterThan(vs.max) {
		return false
	}
	return true
}

// copiesDropped keeps one entry of an image that sits in several
// repositories of one source (a copy made with crane or oras): among the
// entries with the same source, name (case-insensitively), version and
// digest, the one of the repository named like the image (its lower-cased
// name), else the one of the repository first in byte order. A copy is
// still found by its own repository's name, since only the entries that
// matched are compared.
func copiesDropped(cs []candidate) []candidate {
	type key struct{ source, name, version, digest string }
	at := map[key]int{}
	out := cs[:0:0]
	for _, c := range cs {
		k := key{c.e.Source, strings.ToLower(c.e.Name), c.e.Version, c.e.Digest}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, c)
			continue
		}
		if betterHome(c.e, out[i].e) {
			out[i] = c
		}
	}
	return out
}

// betterHome reports whether a's repository is a better home than b's for
// the same image: the one named like the image, else the first.
func betterHome(a, b api.FindEntry) bool {
	an, bn := a.Repository == strings.ToLower(a.Name), b.Repository == strings.ToLower(b.Name)
	if an != bn {
		return an
	}
	return a.Repository < b.Repository
}

type groupKey struct{ source, repository, name string }

// latest keeps, for each name, the candidate with the highest version.
// Candidates whose version does not parse are each kept.
func latest(cs []candidate) []candidate {
	best := map[groupKey]int{}
	var out []candidate
	for _, c := range cs {
		if c.v == nil {
			out = append(out, c)
			continue
		}
		k := groupKey{c.e.Source, c.e.Repository, strings.ToLower(c.e.Name)}
		i, ok := best[k]
		if !ok {
			best[k] = len(out)
			out = append(out, c)
			continue
		}
		if preferred(c, out[i]) {
			out[i] = c
		}
	}
	return out
}

// preferred reports whether a should replace b as the latest of a name:
// the higher version, then the newer image, then the smaller digest, so that
// the choice does not depend on the order of the input.
func preferred(a, b candidate) bool {
	if c := a.v.Compare(b.v); c != 0 {
		return c > 0
	}
	if !a.e.Created.Equal(b.e.Created) {
		return a.e.Created.After(b.e.Created)
	}
	return a.e.Digest < b.e.Digest
}

// compareCandidates orders by Name (case-insensitive), then version
// ascending (versions that parse first, the others by text), then
// repository, source and digest.
func compareCandidates(a, b candidate) int {
	if c := strings.Compare(strings.ToLower(a.e.Name), strings.ToLower(b.e.Name)); c != 0 {
		return c
	}
	switch {
	case a.v != nil && b.v != nil:
		if c := a.v.Compare(b.v); c != 0 {
			return c
		}
	case a.v != nil:
		return -1
	case b.v != nil:
		return 1
	}
	return cmp.Or(
		strings.Compare(a.e.Version, b.e.Version),
		strings.Compare(a.e.Repository, b.e.Repository),
		strings.Compare(a.e.Source, b.e.Source),
		strings.Compare(a.e.Name, b.e.Name),
		strings.Compare(a.e.Digest, b.e.Digest),
	)
}
