package find

import ocispec "github.com/opencontainers/image-spec/specs-go/v1"

// The manifest annotations that describe a catalog image. The base
// annotations name the parent image.
const (
	AnnotationTitle       = ocispec.AnnotationTitle       // display name, e.g. "NanoServer"
	AnnotationVersion     = ocispec.AnnotationVersion     // four-part version
	AnnotationVendor      = ocispec.AnnotationVendor      // publisher, "CN=..."
	AnnotationDescription = ocispec.AnnotationDescription // free text
	AnnotationCreated     = ocispec.AnnotationCreated     // RFC 3339
	AnnotationBaseName    = ocispec.AnnotationBaseImageName
	AnnotationBaseDigest  = ocispec.AnnotationBaseImageDigest
)
