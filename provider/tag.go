package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/store/meta"
)

// refDigest is the image digest that the ref repo:tag points at, or "".
func refDigest(tx *bolt.Tx, repo, tag string) digest.Digest {
	b := meta.GetRefBucket(tx, repo)
	if b == nil {
		return ""
	}
	return digest.Digest(b.Get([]byte(tag)))
}

// resolveOne finds the one installed image that ref names: first a ref
// "repo:tag" exactly as stored (extra refs included), then what
// resolveImages accepts, the highest version when a name selects several.
func resolveOne(tx *bolt.Tx, ref string) (imageRecord, error) {
	ref = strings.TrimSpace(ref)
	if i := strings.LastIndex(ref, ":"); i > 0 && !strings.Contains(ref[i:], "/") {
		if d := refDigest(tx, ref[:i], ref[i+1:]); d != "" {
			rec, ok, err := getImage(tx, d)
			if err != nil {
				return rec, err
			}
			if ok {
				return rec, nil
			}
		}
	}
	recs, err := listImages(tx)
	if err != nil {
		return imageRecord{}, err
	}
	sel, err := resolveImages(recs, ref)
	if err != nil {
		return imageRecord{}, err
	}
	return highest(sel), nil
}

// managedRef reports whether repo:tag is one of the refs the provider keeps
// for rec itself: repository:version and repository:latest.
func managedRef(rec imageRecord, repo, tag string) bool {
	return repo == rec.Repository && (tag == rec.Version || tag == latestTag)
}

// Tag adds the ref repo:tag (as `docker tag` does) to the installed image
// that image names: a ref, a name, "name:version", a digest or a unique id
// prefix (the highest version when a name selects several). repo must be a
// valid OCI repository name and tag a valid tag (InvalidArgument). An extra
// ref that points at another image moves, as with docker; but the refs the
// provider keeps itself are Conflict: repository:version of another image,
// and repository:latest of a repository that has installed images, which
// always names its highest version. Tagging with a ref the image already
// has changes nothing.
func (p *Provider) Tag(ctx context.Context, image, repo, tag string) error {
	if p.isClosing() {
		return errClosed
	}
	repo, tag = strings.TrimSpace(repo), strings.TrimSpace(tag)
	if err := model.ValidateName(repo); err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	if err := model.ValidateTag(tag); err != nil {
		return fmt.Errorf("tag: %w", err)
	}
	var target imageRecord
	moved := ""
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		rec, err := resolveOne(tx, image)
		if err != nil {
			return err
		}
		target = rec
		old := refDigest(tx, repo, tag)
		if old == rec.Digest {
			return nil
		}
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Repository != repo {
				continue
			}
			if tag == latestTag {
				return fmt.Errorf("ref %s:%s names the highest installed version of %s, which the provider keeps: %w",
					repo, tag, repo, errdefs.ErrConflict)
			}
			if r.Digest == old && managedRef(r, repo, tag) {
				return fmt.Errorf("ref %s:%s is the name of image %s (%s): %w", repo, tag, r.label(), r.Digest, errdefs.ErrConflict)
			}
		}
		if err := setRef(tx, repo, tag, rec.Digest); err != nil {
			return err
		}
		if old != "" {
			moved = old.String()
		}
		return nil
	})
	if err != nil {
		return err
	}
	l := p.log.WithField("ref", repo+":"+tag).WithField("image", target.label())
	if moved != "" {
		l = l.WithField("from", moved)
	}
	l.Info("image tagged")
	return nil
}

// Untag removes the ref repo:tag, as `docker rmi repo:tag` does. An extra
// ref (one that Tag added) is deleted and the image stays. A ref the
// provider keeps for the image itself (repository:version or
// repository:latest) removes the image through Remove's rules, dependents
// included (*DependentsError), when the image has no other ref: removed is
// then true. While the image still has extra refs such a ref is
// FailedPrecondition: untag those first. No such ref is NotFound.
func (p *Provider) Untag(ctx context.Context, repo, tag string) (removed bool, err error) {
	if p.isClosing() {
		return false, errClosed
	}
	repo, tag = strings.TrimSpace(repo), strings.TrimSpace(tag)
	ref := repo + ":" + tag
	var rec imageRecord
	removeImage := false
	err = p.db.Update(ctx, func(tx *bolt.Tx) error {
		d := refDigest(tx, repo, tag)
		if d == "" {
			return fmt.Errorf("no such ref %s: %w", ref, errdefs.ErrNotFound)
		}
		var ok bool
		if rec, ok, err = getImage(tx, d); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("ref %s: image %s is gone: %w", ref, d, errdefs.ErrNotFound)
		}
		if !managedRef(rec, repo, tag) {
			if err := deleteRef(tx, repo, tag); err != nil {
				return fmt.Errorf("ref %s: %w", ref, err)
			}
			_, err := meta.DeleteRefBucketIfEmpty(tx, repo)
			return err
		}
		removeImage = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if !removeImage {
		p.log.WithField("ref", ref).WithField("image", rec.label()).Info("image untagged")
		return false, nil
	}
	// The refs are checked in the transaction that deletes, so that a Tag
	// landing after the lookup above keeps the image.
	guard := func(r imageRecord, refs []string) error { return noExtraRefs(ref, r, refs) }
	if _, err := p.remove(ctx, RemoveOptions{ID: rec.Digest.String()}, guard); err != nil {
		return false, err
	}
	return true, nil
}

// noExtraRefs refuses, with FailedPrecondition, to remove rec through its
// ref ref while rec has refs (of refs, all of rec's) that Tag added.
func noExtraRefs(ref string, rec imageRecord, refs []string) error {
	var extra []string
	for _, r := range refs {
		rr, rt, _ := strings.Cut(r, ":")
		if !managedRef(rec, rr, rt) {
			extra = append(extra, r)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	return fmt.Errorf("ref %s names image %s, which also has the refs %s: untag them first, or remove the image by id: %w",
		ref, rec.label(), strings.Join(extra, ", "), errdefs.ErrFailedPrecondition)
}

// ImageConfig returns the config of the installed image that ref names (as
// Tag's image does), read from the content store.
func (p *Provider) ImageConfig(ctx context.Context, ref string) (ocispec.Image, error) {
	var rec imageRecord
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		rec, err = resolveOne(tx, ref)
		return err
	})
	if err != nil {
		return ocispec.Image{}, err
	}
	return p.readConfig(ctx, rec.Config)
}
