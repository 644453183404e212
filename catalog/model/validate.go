package model

import (
	// Register the hash functions of the accepted digest algorithms.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

var (
	// nameRegexp is the repository name grammar of the OCI Distribution
	// specification, anchored.
	nameRegexp = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRegexp is the tag grammar of the OCI Distribution specification,
	// anchored.
	tagRegexp = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// MaxNameLength is the longest repository name accepted.
const MaxNameLength = reference.NameTotalLengthMax

// ValidateName checks a repository name against the OCI grammar, e.g.
// "nanoserver" or "microsoft/iis". It returns an ErrNameInvalid error.
func ValidateName(name string) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("repository name of %d characters, at most %d allowed: %w", len(name), MaxNameLength, ErrNameInvalid)
	}
	if !nameRegexp.MatchString(name) {
		return fmt.Errorf("repository name %q: %w", name, ErrNameInvalid)
	}
	return nil
}

// ValidateTag checks a tag against the OCI grammar. It returns an
// ErrTagInvalid error.
func ValidateTag(tag string) error {
	if !tagRegexp.MatchString(tag) {
		return fmt.Errorf("tag %q: %w", tag, ErrTagInvalid)
	}
	return nil
}

// ParseDigest parses a sha256 or sha512 digest. Any other algorithm, or a
// malformed digest, gives an ErrDigestInvalid error.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", s, err, ErrDigestInvalid)
	}
	if alg := d.Algorithm(); alg != digest.SHA256 && alg != digest.SHA512 {
		return "", fmt.Errorf("digest %q: algorithm %s is not supported (sha256, sha512): %w", s, alg, ErrDigestInvalid)
	}
	return d, nil
}

// ParseReference splits a manifest reference into a tag or a digest: a
// reference with a colon is a digest (ParseDigest), any other a tag
// (ValidateTag). Exactly one of the results is set when err is nil.
func ParseReference(ref string) (tag string, dgst digest.Digest, err error) {
	if strings.Contains(ref, ":") {
		dgst, err = ParseDigest(ref)
		return "", dgst, err
	}
	if err := ValidateTag(ref); err != nil {
		return "", "", err
	}
	return ref, "", nil
}
