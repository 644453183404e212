package catalog

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/store/meta"
)

// Tags lists repo's tags in lexical order, after last, at most n (n < 0: all).
// An unknown repository gives ErrNameUnknown.
func (r *Registry) Tags(ctx context.Context, repo string, n int, last string) ([]string, error) {
	if err := ValidateName(repo); err != nil {
		return nil, err
	}
	tags := []string{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		page(meta.GetTagsBucket(rb), n, last, func(k []byte) { tags = append(tags, string(k)) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// Repositories lists repository names in lexical order, after last, at most
// n (n < 0: all). A repository is listed while it holds a manifest.
func (r *Registry) Repositories(ctx context.Context, n int, last string) ([]string, error) {
	repos := []string{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		all := meta.GetRepositoriesBucket(tx)
		page(all, n, last, func(k []byte) { repos = append(repos, string(k)) }, func(k []byte) bool {
			manifests := meta.GetManifestsBucket(all.Bucket(k))
			if manifests == nil {
				return false
			}
			first, _ := manifests.Cursor().First()
			return first != nil
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return repos, nil
}

// page calls add for the keys of b after last, in order, at most n of them
// (n < 0: all), skipping keys that a filter rejects.
func page(b *bolt.Bucket, n int, last string, add func(k []byte), filters ...func(k []byte) bool) {
	if b == nil || n == 0 {
		return
	}
	c := b.Cursor()
	var k []byte
	if last == "" {
		k, _ = c.First()
	} else if k, _ = c.Seek([]byte(last)); k != nil && string(k) == last {
		k, _ = c.Next()
	}
	count := 0
	for ; k != nil && (n < 0 || count < n); k, _ = c.Next() {
		if !all(filters, k) {
			continue
		}
		add(k)
		count++
	}
}

func all(filters []func([]byte) bool, k []byte) bool {
	for _, f := range filters {
		if !f(k) {
			return false
		}
	}
	return true
}

// Referrers lists the manifests in repo whose subject is subject, filtered
// by artifactType when it is not empty.
//
// Each descriptor carries the manifest's media type, digest, size and
// annotations, and as artifactType the manifest's artifactType or else its
// config's media type. An unknown subject or repository gives an empty
// list.
func (r *Registry) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := ValidateName(repo); err != nil {
		return nil, err
	}
	if err := checkDigest(subject); err != nil {
		return nil, err
	}
	descs := []ocispec.Descriptor{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		refs := meta.GetReferrersBucket(rb, string(subject))
		if refs == nil {
			return nil
		}
		return refs.ForEach(func(k, v []byte) error {
			if artifactType != "" && string(v) != artifactType {
				return nil
			}
			rec, ok, err := getRecord(rb, digest.Digest(k))
			if err != nil || !ok {
				return err
			}
			descs = append(descs, ocispec.Descriptor{
				MediaType:    rec.MediaType,
				Digest:       rec.Digest,
				Size:         rec.Size,
				ArtifactType: string(v),
				Annotations:  rec.Annotations,
			})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return descs, nil
}

// TaggedManifests lists every tag of every repository with its manifest, in
// one read transaction, ordered by repository and tag.
func (r *Registry) TaggedManifests(ctx context.Context) ([]TaggedManifest, error) {
	out := []TaggedManifest{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		repos := meta.GetRepositoriesBucket(tx)
		return repos.ForEachBucket(func(name []byte) error {
			rb := repos.Bucket(name)
			tags := meta.GetTagsBucket(rb)
			if tags == nil {
				return nil
			}
			return tags.ForEach(func(tag, dgst []byte) error {
				rec, ok, err := getRecord(rb, digest.Digest(dgst))
				if err != nil || !ok {
					return err
				}
				out = append(out, TaggedManifest{Repository: string(name), Tag: string(tag), Manifest: rec})
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Manifest parsing.
