package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// Remove removes the selected images, then collects the blobs nothing
// references. An image that a child image or a container depends on is
// refused with a *DependentsError (class Conflict), and nothing is removed.
//
// Name, or ID and IDs, select (one of the two, else InvalidArgument):
//   - Name matches the display name or the repository (wildcards allowed),
//     with the version options (validated with OneGet's rules); no option
//     selects every version. When it selects more than one image, Force
//     must be set, else a *MatchesError (class Conflict) lists them and
//     nothing is removed;
//   - each ID is a digest, or at least 4 hex characters that begin the id
//     of exactly one image (InvalidArgument listing them when several do).
//
// Nothing selected is NotFound. The dependents are the installed images
// whose parent is selected and that are not selected themselves, and every
// container, in any state, of a selected image. The records and refs go in
// one transaction; then garbage collection deletes the blobs that no
// remaining record and no lease (of a job, a save, a load or a commit)
// references: the blobs that a running save reads are freed when it ends.
// The result lists the removed images and what the collection freed. With
// WhatIf, the same checks run in a read transaction, and the result lists
// what would be removed, with WhatIf set.
func (p *Provider) Remove(ctx context.Context, opts RemoveOptions) (api.RemoveResult, error) {
	return p.remove(ctx, opts, nil)
}

// removeGuard is asked about each image that a removal selected, with the
// image's refs, in the transaction that deletes them; an error refuses the
// removal.
type removeGuard func(rec imageRecord, refs []string) error

// remove is Remove, with guard when it is not nil.
func (p *Provider) remove(ctx context.Context, opts RemoveOptions, guard removeGuard) (api.RemoveResult, error) {
	if p.isClosing() {
		return api.RemoveResult{}, errClosed
	}
	name := strings.TrimSpace(opts.Name)
	var ids []string
	for _, id := range append([]string{opts.ID}, opts.IDs...) {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	switch {
	case name == "" && len(ids) == 0:
		return api.RemoveResult{}, fmt.Errorf("remove: a name or an id is required: %w", errdefs.ErrInvalidArgument)
	case name != "" && len(ids) > 0:
		return api.RemoveResult{}, fmt.Errorf("remove: give a name or an id, not both: %w", errdefs.ErrInvalidArgument)
	}
	vf, err := newVersionFilter(opts.VersionOptions)
	if err != nil {
		return api.RemoveResult{}, err
	}
	if len(ids) > 0 && vf.any() {
		return api.RemoveResult{}, fmt.Errorf("remove: version options select by name, not by id: %w", errdefs.ErrInvalidArgument)
	}

	var removed []api.Image
	// plan selects and checks; the removal deletes what it selected.
	plan := func(tx *bolt.Tx) ([]imageRecord, map[digest.Digest][]string, error) {
		recs, err := listImages(tx)
		if err != nil {
			return nil, nil, err
		}
		refs, err := listRefs(tx)
		if err != nil {
			return nil, nil, err
		}
		var sel []imageRecord
		if len(ids) > 0 {
			for _, id := range ids {
				one, err := selectByID(recs, id)
				if err != nil {
					return nil, nil, err
				}
				for _, r := range one {
					if !slices.ContainsFunc(sel, func(s imageRecord) bool { return s.Digest == r.Digest }) {
						sel = append(sel, r)
					}
				}
			}
		} else {
			for _, r := range recs {
				if (find.MatchName(name, r.Name) || find.MatchName(name, r.Repository)) && vf.match(r.Version) {
					sel = append(sel, r)
				}
			}
			if len(sel) == 0 {
				return nil, nil, fmt.Errorf("image %q is not installed: %w", name, errdefs.ErrNotFound)
			}
			if len(sel) > 1 && !opts.Force {
				me := &MatchesError{Name: name}
				for _, r := range sel {
					me.Matches = append(me.Matches, r.image(refs[r.Digest]))
				}
				sortImages(me.Matches)
				return nil, nil, me
			}
		}
		if guard != nil {
			for _, r := range sel {
				if err := guard(r, refs[r.Digest]); err != nil {
					return nil, nil, err
				}
			}
		}
		containers, err := listContainers(tx)
		if err != nil {
			return nil, nil, err
		}
		if derr := dependents(sel, recs, containers); derr != nil {
			return nil, nil, derr
		}
		return sel, refs, nil
	}
	if opts.WhatIf {
		err = p.db.View(ctx, func(tx *bolt.Tx) error {
			sel, refs, err := plan(tx)
			for _, r := range sel {
				removed = append(removed, r.image(refs[r.Digest]))
			}
			return err
		})
		if err != nil {
			return api.RemoveResult{}, err
		}
		sortImages(removed)
		return api.RemoveResult{Removed: removed, WhatIf: true}, nil
	}
	err = p.db.Update(ctx, func(tx *bolt.Tx) error {
		sel, refs, err := plan(tx)
		if err != nil {
			return err
		}
		for _, r := range sel {
			if err := deleteImage(tx, r); err != nil {
				return err
			}
			removed = append(removed, r.image(refs[r.Digest]))
		}
		return nil
	})
	if err != nil {
		return api.RemoveResult{}, err
	}
	sortImages(removed)
	for _, img := range removed {
		p.log.WithField("image", img.Name+" "+img.Version).WithField("digest", img.Digest).Info("image removed")
	}
	res := api.RemoveResult{Removed: removed}
	res.BlobsDeleted, res.BytesFreed, err = p.collectGarbage(ctx)
	if err != nil {
		return res, fmt.Errorf("images removed, but garbage collection failed: %w", err)
	}
	return res, nil
}

// selectByID finds the image of a digest or of a unique id prefix.
func selectByID(recs []imageRecord, id string) ([]imageRecord, error) {
	if _, err := digest.Parse(id); err != nil {
		prefix := strings.TrimPrefix(strings.ToLower(id), string(digest.SHA256)+":")
		if len(prefix) < minIDPrefix || !isHex(prefix) {
			return nil, fmt.Errorf("image id %q: want a digest or at least %d hex characters: %w",
				id, minIDPrefix, errdefs.ErrInvalidArgument)
		}
		if !slices.ContainsFunc(recs, func(r imageRecord) bool { return strings.HasPrefix(r.Digest.Encoded(), prefix) }) {
			return nil, fmt.Errorf("no installed image has id %q: %w", id, errdefs.ErrNotFound)
		}
	}
	return resolveImages(recs, id)
}

// dependents refuses the removal of sel when images outside sel, or
// containers, are built on it.
func dependents(sel, recs []imageRecord, containers map[string]containerRecord) error {
	selected := map[digest.Digest]imageRecord{}
	for _, r := range sel {
		selected[r.Digest] = r
	}
	var blocked *imageRecord
	var deps []string
	block := func(r imageRecord, dep string) {
		if blocked == nil {
			blocked = &r
		}
		deps = append(deps, dep)
	}
	for _, r := range recs {
		if _, ok := selected[r.Digest]; ok || r.Parent == nil {
			continue
		}
		if parent, ok := selected[digest.Digest(r.Parent.Digest)]; ok {
			block(parent, "image "+r.label())
		}
	}
	ids := make([]string, 0, len(containers))
	for id := range containers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := containers[id]
		if img, ok := selected[digest.Digest(c.Image)]; ok {
			name := c.Name
			if name == "" {
				name = id
			}
			block(img, "container "+name)
		}
	}
	if blocked == nil {
		return nil
	}
	return &DependentsError{Image: blocked.label(), Dependents: deps}
}

// collectGarbage deletes every committed blob that no image record and no
// lease references: the marks are read in one transaction, then the store
// is swept. It holds gcMu, so no lease is written between the two.
func (p *Provider) collectGarbage(ctx context.Context) (int, int64, error) {
	p.gcMu.Lock()
	defer p.gcMu.Unlock()
	p.collections++
	marked := map[digest.Digest]bool{}
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			marked[r.Digest] = true
			for _, d := range r.blobs() {
				marked[d.Digest] = true
			}
		}
		leases := meta.GetLeasesBucket(tx)
		return leases.ForEach(func(job, _ []byte) error {
			b := leases.Bucket(job)
			if b == nil {
				return nil
			}
			return b.ForEach(func(d, _ []byte) error {
				marked[digest.Digest(d)] = true
				return nil
			})
		})
	})
	if err != nil {
		return 0, 0, err
	}
	var garbage []content.Info
	err = p.cs.Walk(ctx, func(info content.Info) error {
		if !marked[info.Digest] {
			garbage = append(garbage, info)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	n, freed := 0, int64(0)
	for _, info := range garbage {
		if err := p.cs.Delete(ctx, info.Digest); err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return n, freed, err
		}
		n++
		freed += info.Size
	}
	if n > 0 {
		p.log.WithField("blobs", n).WithField("bytes", freed).Info("garbage collected")
	}
	return n, freed, nil
}
