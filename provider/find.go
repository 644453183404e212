package provider

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// sourceCatalog is the whole catalog of one source.
type sourceCatalog struct {
	name    string
	entries []api.FindEntry
}

// catalogs lists the catalog of every source, or of the source only, in
// the order of the source names. The sources answer concurrently; a source
// that fails is logged and left out, unless every one fails: the error is
// then Unavailable and names them. An unknown only is NotFound.
func (p *Provider) catalogs(ctx context.Context, only string) ([]sourceCatalog, error) {
	settings, err := p.sourceSettings(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range settings {
		if only == "" || s.Name == only {
			names = append(names, s.Name)
		}
	}
	if only != "" && len(names) == 0 {
		return nil, fmt.Errorf("source %q: %w", only, errdefs.ErrNotFound)
	}

	out := make([]sourceCatalog, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src, err := p.source(ctx, name)
			if err != nil {
				errs[i] = err
				return
			}
			entries, err := src.Catalog(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			for j := range entries {
				if entries[j].Source == "" {
					entries[j].Source = name
				}
			}
			out[i] = sourceCatalog{name: name, entries: entries}
		}()
	}
	wg.Wait()

	var ok []sourceCatalog
	var failed []string
	for i, name := range names {
		if errs[i] != nil {
			p.log.WithField("source", name).WithError(errs[i]).Warn("source skipped: its catalog failed")
			failed = append(failed, fmt.Sprintf("%s (%v)", name, errs[i]))
			continue
		}
		ok = append(ok, out[i])
	}
	if len(ok) == 0 && len(failed) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no source answered: %s: %w", strings.Join(failed, "; "), errdefs.ErrUnavailable)
	}
	return ok, nil
}

// Find searches every source (or one) with OneGet's rules.
//
// The catalogs of the sources are merged, each entry naming its source, and
// filtered by find.Filter: the options are validated first (InvalidArgument
// with OneGet's text), a name without wildcards that matches nothing is
// NotFound with OneGet's text, and the result is sorted by name then
// version. An unknown opts.Source is NotFound. A source that does not
// answer is logged and skipped; when none answers the error is Unavailable
// and names them.
func (p *Provider) Find(ctx context.Context, opts FindOptions) ([]api.FindEntry, error) {
	fo := findOptions(opts.Name, opts.VersionOptions)
	if err := fo.Validate(); err != nil {
		return nil, err
	}
	cats, err := p.catalogs(ctx, opts.Source)
	if err != nil {
		return nil, err
	}
	return find.Filter(mergeCatalogs(cats), fo)
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

func mergeCatalogs(cats []sourceCatalog) []api.FindEntry {
	var all []api.FindEntry
	for _, c := range cats {
		all = append(all, c.entries...)
	}
	return all
}
