package catalog

import (
	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/catalog/model"
)

// MaxNameLength is the longest repository name accepted.
const MaxNameLength = model.MaxNameLength

// ValidateName checks a repository name (see model.ValidateName).
func ValidateName(name string) error { return model.ValidateName(name) }

// ValidateTag checks a tag (see model.ValidateTag).
func ValidateTag(tag string) error { return model.ValidateTag(tag) }

// ParseDigest parses a sha256 or sha512 digest (see model.ParseDigest).
func ParseDigest(s string) (digest.Digest, error) { return model.ParseDigest(s) }

// ParseReference splits a manifest reference into a tag or a digest (see
// model.ParseReference).
func ParseReference(ref string) (tag string, dgst digest.Digest, err error) {
	return model.ParseReference(ref)
}
