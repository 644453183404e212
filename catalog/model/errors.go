package model

import (
	"fmt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// The errors of the grammar. Each carries an errdefs class, and its
// message is the one the OCI Distribution specification gives for its
// error code; catalogd's server finds the code with errors.Is.
var (
	// ErrDigestInvalid (DIGEST_INVALID): the digest is malformed or of an
	// unsupported algorithm.
	ErrDigestInvalid = fmt.Errorf("provided digest is invalid: %w", errdefs.ErrInvalidArgument)

	// ErrNameInvalid (NAME_INVALID): the repository name breaks the
	// grammar.
	ErrNameInvalid = fmt.Errorf("invalid repository name: %w", errdefs.ErrInvalidArgument)

	// ErrTagInvalid (TAG_INVALID): the tag breaks the grammar.
	ErrTagInvalid = fmt.Errorf("manifest tag invalid: %w", errdefs.ErrInvalidArgument)
)
