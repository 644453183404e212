package provider

import (
	"context"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// Find searches every source (or one) with OneGet's rules, in the
// mirrors that providerd keeps of them (see indexes), not over the
// network.
//
// The candidates of the name in each mirror are merged, each entry naming
// its source, and filtered by find.Filter: the options are validated
// first (InvalidArgument with OneGet's text), a name without wildcards
// that matches nothing is NotFound with OneGet's text, after one lookup of
// that repository in each source (see lookup), and the result is sorted
// by name then version. An unknown opts.Source is NotFound. A source whose
// mirror cannot answer is skipped, which a warning says (and a NotFound's
// message: the answer may be incomplete); when none answers the error is
// Unavailable and names them. Warnings name the mirrors that are
// incomplete or stale too: the answer may then miss images.
func (p *Provider) Find(ctx context.Context, opts FindOptions) (api.FindResponse, error) {
	fo := findOptions(opts.Name, opts.VersionOptions)
	if err := fo.Validate(); err != nil {
		return api.FindResponse{}, err
	}
	found, idx, skipped, err := p.resolve(ctx, opts.Source, fo)
	if err != nil {
		return api.FindResponse{}, err
	}
	if err := p.markPolicies(ctx, found); err != nil {
		return api.FindResponse{}, err
	}
	return api.FindResponse{Images: found, Warnings: append(skipped, warnings(idx)...)}, nil
}

// markPolicies sets the Policy of each entry whose source checks
// signatures, so that find can mark the unsigned ones (Signatures says
// whether the source holds a signature; install verifies it).
func (p *Provider) markPolicies(ctx context.Context, entries []api.FindEntry) error {
	modes := map[string]string{}
	for i := range entries {
		src := entries[i].Source
		mode, ok := modes[src]
		if !ok {
			s, err := p.sourceSetting(ctx, src)
			if err != nil && !errdefs.IsNotFound(err) {
				return err
			}
			mode = s.Signatures // none for a source removed meanwhile
			modes[src] = mode
		}
		if mode == api.SignaturesRequired || mode == api.SignaturesOptional {
			entries[i].Policy = mode
		}
	}
	return nil
}

func findOptions(name string, v api.VersionOptions) find.Options {
	return find.Options{
		Name:            name,
		RequiredVersion: v.RequiredVersion,
		MinimumVersion:  v.MinimumVersion,
		MaximumVersion:  v.MaximumVersion,
		AllVersions:     v.AllVersions,
	}
}
