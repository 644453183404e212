package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/signing"
	"github.com/containerprovider/containerprovider/provider/archive"
)

// maxTrustKeys bounds the keys of a source.
const maxTrustKeys = 32

// trustPolicy is a source's signature policy, with its keys loaded.
type trustPolicy struct {
	source   string
	mode     string // api.SignaturesRequired, Optional or Off
	verifier *signing.Verifier
}

// normalizeTrust checks the trust settings of s and fills their defaults:
// every key parses, the mode is one of the three, off without keys and
// required with them unless said, and a mode that checks has keys. It
// sets TrustKeyIDs.
func normalizeTrust(s *api.Source) error {
	if len(s.TrustKeys) > maxTrustKeys {
		return fmt.Errorf("source %s: %d trusted keys, more than %d: %w", s.Name, len(s.TrustKeys), maxTrustKeys, errdefs.ErrInvalidArgument)
	}
	tp, err := policyOf(*s)
	if err != nil {
		return err
	}
	s.TrustKeyIDs = tp.verifier.KeyIDs()
	switch s.Signatures {
	case "":
		s.Signatures = api.SignaturesOff
		if len(s.TrustKeys) > 0 {
			s.Signatures = api.SignaturesRequired
		}
	case api.SignaturesRequired, api.SignaturesOptional:
		if len(s.TrustKeys) == 0 {
			return fmt.Errorf("source %s: signatures %s needs a trusted key: %w", s.Name, s.Signatures, errdefs.ErrInvalidArgument)
		}
	case api.SignaturesOff:
	default:
		return fmt.Errorf("source %s: signatures %q: want %s, %s or %s: %w", s.Name, s.Signatures,
			api.SignaturesRequired, api.SignaturesOptional, api.SignaturesOff, errdefs.ErrInvalidArgument)
	}
	return nil
}

// policyOf is the trust policy of the settings s, its keys loaded; a mode
// left empty is off.
func policyOf(s api.Source) (trustPolicy, error) {
	tp := trustPolicy{source: s.Name, mode: s.Signatures}
	if tp.mode == "" {
		tp.mode = api.SignaturesOff
	}
	var keys []signing.PublicKey
	for i, pem := range s.TrustKeys {
		k, err := signing.LoadPublicKey([]byte(pem))
		if err != nil {
			return trustPolicy{}, fmt.Errorf("source %s: trusted key %d: %w", s.Name, i+1, err)
		}
		keys = append(keys, k)
	}
	tp.verifier = signing.NewVerifier(keys...)
	return tp, nil
}

// trustPolicy reads the policy of the source name.
func (p *Provider) trustPolicy(ctx context.Context, name string) (trustPolicy, error) {
	s, err := p.sourceSetting(ctx, name)
	if err != nil {
		return trustPolicy{}, err
	}
	return policyOf(s)
}

// sigCopy is a signature manifest read from a source, with its config and
// payloads, for the record and for a later save.
type sigCopy struct {
	manifest, config ocispec.Descriptor
	layers           []ocispec.Descriptor
	body, configData []byte
	payloads         map[digest.Digest][]byte
}

type sigBlob struct {
	desc ocispec.Descriptor
	data []byte
}

// blobs are the copy's blobs: the manifest, the config and the payloads.
func (c *sigCopy) blobs() []sigBlob {
	out := []sigBlob{{c.manifest, c.body}, {c.config, c.configData}}
	for _, l := range c.layers {
		out = append(out, sigBlob{l, c.payloads[l.Digest]})
	}
	return out
}

// copySignatures reads the whole signature manifest body of repo from
// src: its config and every layer (the payloads that verification read
// are in have). Any layer that is not a small signature payload leaves
// the signatures out of the record (nil), which then only says which key
// verified the image.
func copySignatures(ctx context.Context, src Source, repo string, body []byte, have map[digest.Digest][]byte) *sigCopy {
	var m ocispec.Manifest
	if json.Unmarshal(body, &m) != nil || len(m.Layers) > signing.MaxSignatures || m.Config.Size > signing.MaxPayloadSize {
		return nil
	}
	c := &sigCopy{
		manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))},
		config:   m.Config, layers: m.Layers, body: body, payloads: map[digest.Digest][]byte{},
	}
	var err error
	if c.configData, err = readPayload(ctx, src, repo, m.Config); err != nil {
		return nil
	}
	for _, l := range m.Layers {
		if l.Size > signing.MaxPayloadSize {
			return nil
		}
		b, ok := have[l.Digest]
		if !ok {
			if b, err = readPayload(ctx, src, repo, l); err != nil {
				return nil
			}
		}
		c.payloads[l.Digest] = b
	}
	return c
}

// checkSignature applies the policy of img's source to img before any of
// its blobs is downloaded: with a policy that checks, the signatures of
// its manifest are read from the source and verified (see
// signing.Verifier.Verify), and a signature that names a publisher must
// agree with the manifest's own annotation. It sets img.signed and, from
// the signature, img.entry.Publisher. Under "required" an image without
// a valid signature by a trusted key is an error of class
// PermissionDenied that names the image, its digest and the keys tried;
// under "optional" it is recorded as unverified.
func (p *Provider) checkSignature(ctx context.Context, img *pendingImage) error {
	tp, err := p.trustPolicy(ctx, img.entry.Source)
	if err != nil {
		return err
	}
	if tp.mode == api.SignaturesOff {
		return nil
	}
	v, sigs, err := verifySource(ctx, tp, img.src, img.entry.Repository, img.digest)
	var pub string
	if err == nil {
		pub, err = signedPublisher(v, manifestVendor(img.manifestBytes))
	}
	switch {
	case err == nil:
		img.signed = "key " + v.KeyID
		img.sigs = sigs
		if pub != "" {
			img.entry.Publisher = pub
		}
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case tp.mode == api.SignaturesOptional && errdefs.IsPermissionDenied(err):
		p.log.WithField("image", img.label()).WithError(err).Warn("installing an image without a valid signature: the source's policy is optional")
		img.signed = api.SignedUnverified
		return nil
	}
	return fmt.Errorf("image %s of source %s: %w", img.label(), tp.source, err)
}

// checkInstalledParent applies the policy of img's source to img's
// parent when the parent is installed already (and so not part of the
// job): a parent that a key of this policy verified at its install
// passes; any other (installed with no check, unverified, or verified by
// a key this source does not trust) is verified now, from img's source.
// Under "required" a parent without a valid signature is refused, as the
// child would be.
func (p *Provider) checkInstalledParent(ctx context.Context, img *pendingImage) error {
	parent := img.entry.Parent
	if parent == nil || parent.Digest == "" {
		return nil
	}
	tp, err := p.trustPolicy(ctx, img.entry.Source)
	if err != nil || tp.mode == api.SignaturesOff {
		return err
	}
	d, err := digest.Parse(parent.Digest)
	if err != nil {
		return nil // the job's own checks name a bad parent
	}
	var rec imageRecord
	var ok bool
	if err := p.db.View(ctx, func(tx *bolt.Tx) error {
		rec, ok, err = getImage(tx, d)
		return err
	}); err != nil || !ok {
		return err
	}
	if key, found := strings.CutPrefix(rec.Signed, "key "); found && slices.Contains(tp.verifier.KeyIDs(), key) {
		return nil
	}
	if _, _, err := verifySource(ctx, tp, img.src, rec.Repository, d); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if tp.mode == api.SignaturesOptional && errdefs.IsPermissionDenied(err) {
			return nil
		}
		return fmt.Errorf("image %s of source %s: its installed parent %s: %w", img.label(), tp.source, rec.label(), err)
	}
	return nil
}

// filePolicy is the policy of images that come from a file (install
// --path), which name no source: the keys of every source whose policy
// checks, under the strictest of their policies. A host that requires
// signatures from one source requires them of files too.
func (p *Provider) filePolicy(ctx context.Context) (trustPolicy, error) {
	settings, err := p.sourceSettings(ctx)
	if err != nil {
		return trustPolicy{}, err
	}
	tp := trustPolicy{source: "the policy of files (every source's keys)", mode: api.SignaturesOff}
	var keys []signing.PublicKey
	for _, s := range settings {
		if s.Signatures != api.SignaturesRequired && s.Signatures != api.SignaturesOptional {
			continue
		}
		sp, err := policyOf(s)
		if err != nil {
			return trustPolicy{}, err
		}
		keys = append(keys, sp.verifier.Keys()...)
		if s.Signatures == api.SignaturesRequired || tp.mode == api.SignaturesOff {
			tp.mode = s.Signatures
		}
	}
	tp.verifier = signing.NewVerifier(keys...)
	return tp, nil
}

// checkArchiveSignature applies tp to an image of an archive, with the
// signatures the archive holds for it (see archive.Signatures), as
// checkSignature does for a source: rec gets Signed, the signatures and
// the signed publisher, or the image is refused.
func (p *Provider) checkArchiveSignature(ctx context.Context, tp trustPolicy, img archive.Image, c archive.Contents, rec *imageRecord) error {
	var layers []signing.Signed
	if img.Signatures != nil {
		var err error
		if layers, err = signing.Layers(c.Manifests[img.Signatures.Manifest.Digest]); err != nil {
			return fmt.Errorf("image %s of the archive: %w", rec.label(), err)
		}
	}
	v, err := tp.verifier.Verify(ctx, rec.Repository, rec.Digest, layers, func(_ context.Context, l signing.Signed) ([]byte, error) {
		b, ok := c.Payloads[l.Payload.Digest]
		if !ok {
			return nil, fmt.Errorf("payload %s is not in the archive: %w", l.Payload.Digest, errdefs.ErrNotFound)
		}
		return b, nil
	})
	var pub string
	if err == nil {
		pub, err = signedPublisher(v, rec.Publisher)
	}
	switch {
	case err == nil:
		rec.Signed, rec.Signatures = "key "+v.KeyID, img.Signatures
		if pub != "" {
			rec.Publisher = pub
		}
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case tp.mode == api.SignaturesOptional && errdefs.IsPermissionDenied(err):
		rec.Signed = api.SignedUnverified
		return nil
	}
	return fmt.Errorf("image %s of the archive, under %s: %w", rec.label(), tp.source, err)
}

// signedPublisher is the publisher that the verified signature v claims
// ("" when it claims none). A claim that differs from the manifest's
// vendor annotation is refused: the signature is then not what the image
// says of itself.
func signedPublisher(v signing.Verified, manifestVendor string) (string, error) {
	signed := v.Payload.Claim(find.AnnotationVendor)
	if signed != "" && manifestVendor != "" && signed != manifestVendor {
		return "", fmt.Errorf("the manifest names the publisher %q, the signature of key %s %q: %w",
			manifestVendor, v.KeyID, signed, signing.ErrUntrusted)
	}
	return signed, nil
}

// manifestVendor is the vendor annotation of a manifest ("" for none, or
// for bytes that are not a manifest, which the install refuses anyway).
func manifestVendor(b []byte) string {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(b, &m)
	return m.Annotations[find.AnnotationVendor]
}

// verifySource reads the signatures of repo@d from src and verifies them
// with tp's keys, and returns a copy of them when they verify. A source
// without the signature tag has no signature.
func verifySource(ctx context.Context, tp trustPolicy, src Source, repo string, d digest.Digest) (signing.Verified, *sigCopy, error) {
	_, body, err := src.Manifest(ctx, repo, signing.SignatureTag(d))
	var layers []signing.Signed
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return signing.Verified{}, nil, fmt.Errorf("the signatures of %s@%s: %w", repo, d, err)
	case len(body) > signing.MaxManifestSize:
		return signing.Verified{}, nil, fmt.Errorf("the signatures of %s@%s: more than %d bytes: %w", repo, d, signing.MaxManifestSize, errdefs.ErrTooLarge)
	default:
		if layers, err = signing.Layers(body); err != nil {
			return signing.Verified{}, nil, fmt.Errorf("the signatures of %s@%s: %w", repo, d, err)
		}
	}
	read := map[digest.Digest][]byte{}
	v, err := tp.verifier.Verify(ctx, repo, d, layers, func(ctx context.Context, l signing.Signed) ([]byte, error) {
		b, err := readPayload(ctx, src, repo, l.Payload)
		if err == nil {
			read[l.Payload.Digest] = b
		}
		return b, err
	})
	if err != nil {
		return signing.Verified{}, nil, err
	}
	return v, copySignatures(ctx, src, repo, body, read), nil
}

// readPayload reads a signature's payload from src, at most its
// descriptor's size (bounded by signing.MaxPayloadSize), and checks it
// against the descriptor's digest.
func readPayload(ctx context.Context, src Source, repo string, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := src.Blob(ctx, repo, desc.Digest, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	vr := desc.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(&buf, vr), io.LimitReader(rc, desc.Size+1))
	switch {
	case err != nil:
		return nil, err
	case n != desc.Size:
		return nil, fmt.Errorf("%d bytes, the descriptor says %d: %w", n, desc.Size, errdefs.ErrFailedPrecondition)
	case !vr.Verified():
		return nil, fmt.Errorf("the bytes do not match %s: %w", desc.Digest, errdefs.ErrFailedPrecondition)
	}
	return buf.Bytes(), nil
}
