package catalog

import (
	"fmt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
)

// The errors of the OCI Distribution protocol. Each carries an errdefs class,
// which decides the HTTP status through errdefs.HTTPStatus, and its message
// is the one the specification gives for its error code. The Registry wraps
// them with the name of the object concerned; servers find the code with
// errors.Is.
var (
	// ErrBlobUnknown (BLOB_UNKNOWN): the blob is not linked into the
	// repository.
	ErrBlobUnknown = fmt.Errorf("blob unknown to registry: %w", errdefs.ErrNotFound)
	// ErrBlobUploadInvalid (BLOB_UPLOAD_INVALID): the upload request is
	// malformed.
	ErrBlobUploadInvalid = fmt.Errorf("blob upload invalid: %w", errdefs.ErrInvalidArgument)
	// ErrBlobUploadUnknown (BLOB_UPLOAD_UNKNOWN): no such upload session in
	// the repository.
	ErrBlobUploadUnknown = fmt.Errorf("blob upload unknown to registry: %w", errdefs.ErrNotFound)
	// ErrDigestInvalid is model.ErrDigestInvalid.
	ErrDigestInvalid = model.ErrDigestInvalid
	// ErrDigestMismatch (DIGEST_INVALID as well): the digest is well formed
	// but does not match the content. Servers report both ErrDigestInvalid
	// and ErrDigestMismatch as DIGEST_INVALID.
	ErrDigestMismatch = fmt.Errorf("provided digest did not match uploaded content: %w", errdefs.ErrFailedPrecondition)
	// ErrManifestBlobUnknown (MANIFEST_BLOB_UNKNOWN): a manifest refers to a
	// distributable blob, or an index to a manifest, that the repository
	// lacks.
	ErrManifestBlobUnknown = fmt.Errorf("manifest references a manifest or blob unknown to registry: %w", errdefs.ErrInvalidArgument)
	// ErrManifestInvalid (MANIFEST_INVALID): the manifest does not parse, or
	// breaks a rule of its media type.
	ErrManifestInvalid = fmt.Errorf("manifest invalid: %w", errdefs.ErrInvalidArgument)
	// ErrManifestUnknown (MANIFEST_UNKNOWN): no manifest under that tag or
	// digest in the repository.
	ErrManifestUnknown = fmt.Errorf("manifest unknown to registry: %w", errdefs.ErrNotFound)
	// ErrNameInvalid is model.ErrNameInvalid.
	ErrNameInvalid = model.ErrNameInvalid
	// ErrNameUnknown (NAME_UNKNOWN): the repository does not exist.
	ErrNameUnknown = fmt.Errorf("repository name not known to registry: %w", errdefs.ErrNotFound)
	// ErrSizeInvalid (SIZE_INVALID): the announced size does not match the
	// content.
	ErrSizeInvalid = fmt.Errorf("provided length did not match content length: %w", errdefs.ErrFailedPrecondition)
	// ErrTagInvalid is model.ErrTagInvalid.
	ErrTagInvalid = model.ErrTagInvalid
	// ErrRangeInvalid (RANGE_INVALID, 416): an upload chunk does not start
	// at the session's offset.
	ErrRangeInvalid = fmt.Errorf("invalid content range: %w", errdefs.ErrOutOfRange)
	// ErrManifestTooLarge (SIZE_INVALID, 413): the manifest is bigger than
	// the registry accepts.
	ErrManifestTooLarge = fmt.Errorf("manifest too large: %w", errdefs.ErrTooLarge)
	// ErrUnsupported (UNSUPPORTED): the registry does not implement the
	// request, e.g. a Docker schema 1 manifest.
	ErrUnsupported = fmt.Errorf("the operation is unsupported: %w", errdefs.ErrNotImplemented)
)
