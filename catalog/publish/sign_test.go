package publish

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/signing"
)

// testSigner is a signer with an unencrypted key (an encrypted one costs
// an scrypt derivation; package signing tests those), and its public key.
func testSigner(t *testing.T) (*signing.Signer, signing.PublicKey) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.LoadSigner(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// verifyIn verifies the signatures of repo@d in tg with the keys.
func verifyIn(t *testing.T, tg Target, repo string, d digest.Digest, keys ...signing.PublicKey) (signing.Verified, error) {
	t.Helper()
	ctx := context.Background()
	var layers []signing.Signed
	if _, r, err := tg.GetManifest(ctx, repo, signing.SignatureTag(d)); err == nil {
		b, _ := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
		r.Close()
		if layers, err = signing.Layers(b); err != nil {
			t.Fatal(err)
		}
	}
	return signing.NewVerifier(keys...).Verify(ctx, repo, d, layers, func(ctx context.Context, l signing.Signed) ([]byte, error) {
		r, err := tg.OpenBlob(ctx, repo, l.Payload.Digest)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	})
}

func TestSeedSigned(t *testing.T) {
	s, k := testSigner(t)
	tg := newMemTarget()
	rep, digests := seedDigests(t, tg, SeedOptions{Signer: s, BaseHost: "catalog.example.com"})
	for _, it := range rep.Items {
		v, err := verifyIn(t, tg, it.Repository, it.Digest, k)
		if err != nil {
			t.Fatalf("%s: %v", it.Repository, err)
		}
		if v.Payload.Critical.Identity.DockerReference != "catalog.example.com/"+it.Repository ||
			v.Payload.Claim(find.AnnotationVendor) != "CN=Microsoft" || v.Payload.Claim(find.AnnotationVersion) != it.Version {
			t.Fatalf("%s: payload %+v", it.Repository, v.Payload)
		}
	}
	// Signing is not part of the image: the digests are those of an
	// unsigned seed with the same host.
	_, plain := seedDigests(t, newMemTarget(), SeedOptions{BaseHost: "catalog.example.com"})
	for k, d := range plain {
		if digests[k] != d {
			t.Errorf("%s: signed %s, unsigned %s", k, digests[k], d)
		}
	}

	// A second key adds a signature; the same key again adds none.
	s2, k2 := testSigner(t)
	iis := digests["microsoft/iis:1.0.0.0"]
	if _, err := Sign(context.Background(), tg, "microsoft/iis", "1.0.0.0", "", s2); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(context.Background(), tg, "microsoft/iis", iis.String(), "", s2); err != nil {
		t.Fatal(err)
	}
	_, r, err := tg.GetManifest(context.Background(), "microsoft/iis", signing.SignatureTag(iis))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	r.Close()
	if layers, _ := signing.Layers(b); len(layers) != 2 {
		t.Fatalf("%d signatures after a second key signed twice, want 2", len(layers))
	}
	if v, err := verifyIn(t, tg, "microsoft/iis", iis, k2); err != nil || v.KeyID != k2.ID {
		t.Fatalf("the second key: %+v, %v", v, err)
	}
	// An unsigned catalog verifies with no key.
	nano := digests["nanoserver:10.0.14393.0"]
	if _, err := verifyIn(t, newMemTarget(), "nanoserver", nano, k); err == nil {
		t.Fatal("an unsigned image verified")
	}
}
