// Package signing signs and verifies image manifests in cosign's format,
// so that `cosign verify --key` accepts what catalogd signs and providerd
// accepts what `cosign sign --key` signed.
//
// A signature is cosign's "simple signing" payload,
//
//	{"critical":{"identity":{"docker-reference":"HOST/REPO"},
//	             "image":{"docker-manifest-digest":"sha256:..."},
//	             "type":"cosign container image signature"},
//	 "optional":{...}}
//
// signed as it is (SHA-256, then ECDSA P-256 in ASN.1 DER, or Ed25519), and
// stored as a layer of an OCI manifest tagged sha256-<hex>.sig in the
// image's repository: the layer's media type is
// application/vnd.dev.cosign.simplesigning.v1+json, its blob the payload,
// and its annotation dev.cosignproject.cosign/signature the signature in
// base64. Each signature is one more layer of that manifest. This is the
// tag layout of cosign 2 and of cosign 3 with --new-bundle-format=false:
// every registry stores it (no OCI 1.1 referrers API needed), and cosign 3
// reads it when it finds no bundle.
//
// Keys are cosign's: the private key an ENCRYPTED SIGSTORE PRIVATE KEY PEM
// (PKCS #8, encrypted with scrypt and NaCl secretbox; cosign's older
// ENCRYPTED COSIGN PRIVATE KEY is read too), the public key a PKIX PUBLIC
// KEY PEM. Keyless signatures (Fulcio certificates, Rekor bundles) are not
// verified: they need a transparency log and a trust root that these
// hosts cannot reach (see Verifier).
package signing

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// The names of cosign's layout.
const (
	// MediaTypeSimpleSigning is the media type of a signature layer.
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// AnnotationSignature holds a layer's signature, in standard base64.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// PayloadType is the payload's critical.type.
	PayloadType = "cosign container image signature"
	// MaxPayloadSize bounds a payload read from a source.
	MaxPayloadSize = 64 << 10
	// MaxSignatures bounds the signatures of one image that are tried.
	MaxSignatures = 64
)

// SignatureTag is the tag of the signatures of the manifest d:
// "sha256-<hex>.sig" (find.SignatureTag, which the find index reads).
func SignatureTag(d digest.Digest) string { return find.SignatureTag(d.String()) }

// Payload is cosign's simple signing payload.
type Payload struct {
	Critical Critical `json:"critical"`
	// Optional holds the signer's claims, e.g. the image's annotations
	// that the signature covers (see Claims).
	Optional map[string]any `json:"optional"`
}

// Critical is the part of a payload that a verifier must check.
type Critical struct {
	Identity struct {
		DockerReference string `json:"docker-reference"`
	} `json:"identity"`
	Image struct {
		DockerManifestDigest string `json:"docker-manifest-digest"`
	} `json:"image"`
	Type string `json:"type"`
}

// NewPayload is the payload that signs the manifest d of the image named
// ref (a repository, with the registry's host when known), with the
// optional claims (nil: none).
func NewPayload(ref string, d digest.Digest, claims map[string]string) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("payload: digest %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
	}
	var p Payload
	p.Critical.Identity.DockerReference = ref
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = PayloadType
	if len(claims) > 0 {
		p.Optional = map[string]any{}
		for k, v := range claims {
			p.Optional[k] = v
		}
	}
	return json.Marshal(p)
}

// ParsePayload decodes a payload and checks what cosign's verifier checks,
// and its type, which cosign's does not: that it signs the manifest d.
func ParsePayload(b []byte, d digest.Digest) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("signature payload: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if p.Critical.Type != PayloadType {
		return Payload{}, fmt.Errorf("signature payload: type %q, want %q: %w", p.Critical.Type, PayloadType, errdefs.ErrInvalidArgument)
	}
	if p.Critical.Image.DockerManifestDigest != d.String() {
		return Payload{}, fmt.Errorf("signature payload: it signs manifest %q, not %s: %w",
			p.Critical.Image.DockerManifestDigest, d, errdefs.ErrFailedPrecondition)
	}
	return p, nil
}

// Claim is an optional claim of the payload as text: "" when it is absent
// or not a string.
func (p Payload) Claim(key string) string {
	s, _ := p.Optional[key].(string)
	return s
}

// RepositoryOf is the repository that a docker-reference names, without
// its registry host: "127.0.0.1:5000/microsoft/iis" is "microsoft/iis",
// "microsoft/iis" stays. The first component is a host when it holds a
// '.' or a ':', or is "localhost", as docker decides.
func RepositoryOf(ref string) string {
	ref = strings.TrimSpace(ref)
	if i := strings.IndexAny(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if first, rest, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		ref = rest
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}
