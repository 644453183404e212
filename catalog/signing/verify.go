package signing

import (
	"context"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// ErrUntrusted ends the error of an image that no trusted key signed: no
// signature, signatures by other keys, or signatures that do not verify.
// Its class is PermissionDenied (the source answered; the policy
// refuses), and its error id IDUntrusted, which cimage gives an exit code
// of its own.
var ErrUntrusted error = untrusted{}

// IDUntrusted is the error id of ErrUntrusted in the API's envelope.
const IDUntrusted = api.IDSignatureNotTrusted

type untrusted struct{}

func (untrusted) Error() string   { return "no valid signature by a trusted key" }
func (untrusted) Unwrap() error   { return errdefs.ErrPermissionDenied }
func (untrusted) ErrorID() string { return IDUntrusted }

// Verifier verifies signatures with a set of trusted public keys. Only
// keys are supported: a keyless signature (a Fulcio certificate, a Rekor
// bundle) needs a trust root and a transparency log, which a later
// Verifier may take from a trusted root file.
type Verifier struct {
	keys []PublicKey
}

// NewVerifier trusts keys.
func NewVerifier(keys ...PublicKey) *Verifier { return &Verifier{keys: keys} }

// Keys are the trusted keys.
func (v *Verifier) Keys() []PublicKey { return append([]PublicKey(nil), v.keys...) }

// KeyIDs are the IDs of the trusted keys.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, len(v.keys))
	for i, k := range v.keys {
		ids[i] = k.ID
	}
	return ids
}

// Verified is a signature that a trusted key verified.
type Verified struct {
	// KeyID is the ID of the key that verified it.
	KeyID string
	// Payload is what the key signed.
	Payload Payload
}

// FetchFunc reads the payload blob of a signature layer, verified
// against its descriptor and at most MaxPayloadSize bytes.
type FetchFunc func(ctx context.Context, l Signed) ([]byte, error)

// Verify finds, among the signature layers of a signature manifest, one
// that a trusted key signed over a payload for the manifest d of the
// repository repo: its signature verifies, its type is cosign's, it names
// d, and its docker-reference, without the host, is repo (a signature
// copied onto another repository's tag does not count). It returns the
// first that does; otherwise an ErrUntrusted error that names the image,
// its digest, the keys tried and why each signature failed.
func (v *Verifier) Verify(ctx context.Context, repo string, d digest.Digest, layers []Signed, fetch FetchFunc) (Verified, error) {
	var why []string
	for i, l := range layers {
		payload, err := fetch(ctx, l)
		if err != nil {
			if ctx.Err() != nil {
				return Verified{}, ctx.Err()
			}
			why = append(why, fmt.Sprintf("signature %d: payload: %v", i+1, err))
			continue
		}
		var key *PublicKey
		for j := range v.keys {
			if v.keys[j].verify(l.Signature, payload) == nil {
				key = &v.keys[j]
				break
			}
		}
		if key == nil {
			why = append(why, fmt.Sprintf("signature %d: no trusted key verifies it", i+1))
			continue
		}
		p, err := ParsePayload(payload, d)
		if err != nil {
			why = append(why, fmt.Sprintf("signature %d (key %s): %v", i+1, key.ID, api.ErrorMessage(err)))
			continue
		}
		if got := RepositoryOf(p.Critical.Identity.DockerReference); !strings.EqualFold(got, repo) {
			why = append(why, fmt.Sprintf("signature %d (key %s): it signs repository %q, not %q", i+1, key.ID, got, repo))
			continue
		}
		return Verified{KeyID: key.ID, Payload: p}, nil
	}
	if len(layers) == 0 {
		why = append(why, "it has no signature")
	}
	return Verified{}, fmt.Errorf("%s@%s: %s (keys tried: %s): %w",
		repo, d, strings.Join(why, "; "), strings.Join(v.KeyIDs(), ", "), ErrUntrusted)
}
