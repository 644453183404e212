package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/catalog/signing"
)

// SignedClaims are the manifest annotations that a signature of catalogd
// carries in its payload's optional part (as `cosign sign -a KEY=VALUE`
// would), so that a verifier can believe them: the publisher above all.
var SignedClaims = []string{find.AnnotationTitle, find.AnnotationVersion, find.AnnotationVendor}

// maxSignedManifest bounds the image manifest that Sign reads.
const maxSignedManifest = 4 << 20

// Sign signs the manifest that reference (a tag or a digest) names in
// repo with s, in cosign's layout (see package signing): the payload
// names the repository, with host in front when it is not empty, and
// carries the image's SignedClaims; it is pushed as a blob, and one more
// layer of the manifest tagged sha256-<hex>.sig. Signing an image again
// with the same key, over the same payload, adds nothing. It returns the manifest signed.
func Sign(ctx context.Context, t Target, repo, reference, host string, s *signing.Signer) (model.ManifestRecord, error) {
	if host != "" {
		if err := CheckBaseHost(host); err != nil {
			return model.ManifestRecord{}, err
		}
	}
	rec, r, err := t.GetManifest(ctx, repo, reference)
	if err != nil {
		return model.ManifestRecord{}, fmt.Errorf("sign %s:%s: %w", repo, reference, err)
	}
	body, err := io.ReadAll(io.LimitReader(io.NewSectionReader(r, 0, r.Size()), maxSignedManifest+1))
	r.Close()
	if err != nil {
		return model.ManifestRecord{}, fmt.Errorf("sign %s:%s: %w", repo, reference, err)
	}
	if len(body) > maxSignedManifest {
		return model.ManifestRecord{}, fmt.Errorf("sign %s:%s: the manifest is larger than %d bytes: %w", repo, reference, maxSignedManifest, errdefs.ErrTooLarge)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return model.ManifestRecord{}, fmt.Errorf("sign %s:%s: manifest: %v: %w", repo, reference, err, errdefs.ErrInvalidArgument)
	}
	claims := map[string]string{}
	for _, k := range SignedClaims {
		if v := strings.TrimSpace(m.Annotations[k]); v != "" {
			claims[k] = v
		}
	}
	ref := repo
	if host != "" {
		ref = host + "/" + repo
	}
	payload, err := signing.NewPayload(ref, rec.Digest, claims)
	if err != nil {
		return model.ManifestRecord{}, err
	}

	tag := signing.SignatureTag(rec.Digest)
	var prev []byte
	if _, pr, err := t.GetManifest(ctx, repo, tag); err == nil {
		prev, err = io.ReadAll(io.LimitReader(io.NewSectionReader(pr, 0, pr.Size()), signing.MaxManifestSize+1))
		pr.Close()
		if err != nil {
			return model.ManifestRecord{}, fmt.Errorf("sign %s: the signatures so far: %w", repo, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return model.ManifestRecord{}, fmt.Errorf("sign %s: the signatures so far: %w", repo, err)
	}
	if prev != nil {
		// Signed by this key over this payload already: nothing to add.
		layers, err := signing.Layers(prev)
		if err != nil {
			return model.ManifestRecord{}, fmt.Errorf("sign %s: the signatures so far: %w", repo, err)
		}
		for _, l := range layers {
			if l.Payload.Digest == digest.FromBytes(payload) && s.Made(l.Signature, payload) {
				return rec, nil
			}
		}
	}
	sig, err := s.Sign(payload)
	if err != nil {
		return model.ManifestRecord{}, err
	}
	sm, err := signing.AppendSignature(prev, payload, sig)
	if err != nil {
		return model.ManifestRecord{}, fmt.Errorf("sign %s: %w", repo, err)
	}
	for _, b := range [][]byte{sm.Payload, sm.Config} {
		if err := putBlobOnce(ctx, t, repo, digest.FromBytes(b), b); err != nil {
			return model.ManifestRecord{}, fmt.Errorf("sign %s: %w", repo, err)
		}
	}
	if _, err := t.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, sm.Body); err != nil {
		return model.ManifestRecord{}, fmt.Errorf("sign %s: %s: %w", repo, tag, err)
	}
	return rec, nil
}
