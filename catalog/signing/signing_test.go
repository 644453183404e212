package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// TestKeyFiles makes a key pair in cosign's files and reads it back, with
// the right password and a wrong one. (Each encrypted key costs an
// scrypt derivation, which is slow under the race detector: the other
// tests use unencrypted keys.)
func TestKeyFiles(t *testing.T) {
	priv, pub, err := GenerateKeyPair(KeyECDSAP256, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(priv), "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----") || !strings.HasPrefix(string(pub), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("key files:\n%s\n%s", priv, pub)
	}
	s, err := LoadSigner(priv, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != k.ID || !strings.HasPrefix(k.ID, "sha256:") {
		t.Fatalf("key ids %q and %q", s.KeyID, k.ID)
	}
	if _, err := LoadSigner(priv, []byte("wrong")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := LoadPublicKey([]byte("not a key")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("a file that is no key: %v", err)
	}
	if _, _, err := GenerateKeyPair("dsa", nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("an unknown algorithm: %v", err)
	}
}

// keyPair makes a signer and its public key, from an unencrypted key.
func keyPair(t *testing.T, alg string) (*Signer, PublicKey) {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case KeyEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
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
	s, err := LoadSigner(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

// signed is a signature manifest of d in repo ref by s, and a fetch of
// its payloads.
func signed(t *testing.T, s *Signer, ref string, d digest.Digest, prev []byte) (Manifest, FetchFunc) {
	t.Helper()
	payload, err := NewPayload(ref, d, map[string]string{"org.opencontainers.image.vendor": "CN=Microsoft"})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	m, err := AppendSignature(prev, payload, sig)
	if err != nil {
		t.Fatal(err)
	}
	return m, fetchFrom(m.Payload)
}

func fetchFrom(payloads ...[]byte) FetchFunc {
	blobs := map[digest.Digest][]byte{}
	for _, p := range payloads {
		blobs[digest.FromBytes(p)] = p
	}
	return func(_ context.Context, l Signed) ([]byte, error) {
		b, ok := blobs[l.Payload.Digest]
		if !ok {
			return nil, fmt.Errorf("blob %s: %w", l.Payload.Digest, errdefs.ErrNotFound)
		}
		return b, nil
	}
}

func TestSignAndVerify(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
		t.Run(alg, func(t *testing.T) {
			s, k := keyPair(t, alg)
			other, otherKey := keyPair(t, alg)
			d := digest.FromString("the manifest")
			m, fetch := signed(t, s, "127.0.0.1:5000/microsoft/iis", d, nil)

			// cosign's layout.
			var om ocispec.Manifest
			if err := json.Unmarshal(m.Body, &om); err != nil {
				t.Fatal(err)
			}
			if om.MediaType != ocispec.MediaTypeImageManifest || om.Config.Digest != digest.FromBytes(m.Config) || len(om.Layers) != 1 ||
				om.Layers[0].MediaType != MediaTypeSimpleSigning || om.Layers[0].Annotations[AnnotationSignature] == "" {
				t.Fatalf("signature manifest %s", m.Body)
			}
			if got := SignatureTag(d); got != "sha256-"+d.Encoded()+".sig" {
				t.Fatalf("tag %q", got)
			}
			layers, err := Layers(m.Body)
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers %v, %v", layers, err)
			}

			ok, err := NewVerifier(otherKey, k).Verify(ctx, "microsoft/iis", d, layers, fetch)
			if err != nil || ok.KeyID != k.ID || ok.Payload.Claim("org.opencontainers.image.vendor") != "CN=Microsoft" {
				t.Fatalf("verify: %+v, %v", ok, err)
			}

			refused := func(name string, v *Verifier, repo string, d digest.Digest, layers []Signed, fetch FetchFunc, want string) {
				t.Helper()
				_, err := v.Verify(ctx, repo, d, layers, fetch)
				if !errors.Is(err, ErrUntrusted) || !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), want) ||
					!strings.Contains(err.Error(), d.String()) {
					t.Errorf("%s: %v, want untrusted naming the digest and %q", name, err, want)
				}
			}
			refused("no signature", NewVerifier(k), "microsoft/iis", d, nil, fetch, "it has no signature")
			refused("untrusted key", NewVerifier(otherKey), "microsoft/iis", d, layers, fetch, "no trusted key verifies it (keys tried: "+otherKey.ID)
			// A manifest changed after signing has another digest, which
			// the payload does not name.
			refused("changed manifest", NewVerifier(k), "microsoft/iis", digest.FromString("changed"), layers, fetch, "not sha256:")
			refused("another repository", NewVerifier(k), "microsoft/nginx", d, layers, fetch, `it signs repository "microsoft/iis"`)
			// A payload whose bytes do not match the signature.
			bad := strings.Replace(string(m.Payload), "CN=Microsoft", "CN=Mallory", 1)
			forged := []Signed{{Payload: ocispec.Descriptor{Digest: digest.FromString(bad), Size: int64(len(bad))}, Signature: layers[0].Signature}}
			refused("forged payload", NewVerifier(k), "microsoft/iis", d, forged, fetchFrom([]byte(bad)), "no trusted key verifies it")

			// A second signature is one more layer; the first still
			// verifies, and so does the second with its own key.
			m2, _ := signed(t, other, "microsoft/iis", d, m.Body)
			layers2, _ := Layers(m2.Body)
			if len(layers2) != 2 {
				t.Fatalf("%d layers after a second signature", len(layers2))
			}
			if ok, err := NewVerifier(otherKey).Verify(ctx, "microsoft/iis", d, layers2, fetchFrom(m.Payload, m2.Payload)); err != nil || ok.KeyID != otherKey.ID {
				t.Fatalf("second signature: %+v, %v", ok, err)
			}
			// The same signature again adds nothing.
			again, err := AppendSignature(m.Body, m.Payload, layers[0].Signature)
			if err != nil || string(again.Body) != string(m.Body) {
				t.Fatalf("the same signature twice:\n%s\n%s", again.Body, m.Body)
			}
		})
	}
}

func TestParsePayload(t *testing.T) {
	d := digest.FromString("m")
	for _, tc := range []struct {
		name, payload string
		want          error
	}{
		{"not json", "{", errdefs.ErrInvalidArgument},
		{"another type", `{"critical":{"type":"x","image":{"docker-manifest-digest":"` + d.String() + `"}}}`, errdefs.ErrInvalidArgument},
		{"another digest", `{"critical":{"type":"` + PayloadType + `","image":{"docker-manifest-digest":"sha256:00"}}}`, errdefs.ErrFailedPrecondition},
	} {
		if _, err := ParsePayload([]byte(tc.payload), d); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestRepositoryOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000/microsoft/iis":   "microsoft/iis",
		"catalog.example.com/nanoserver": "nanoserver",
		"localhost/x":                    "x",
		"microsoft/iis":                  "microsoft/iis",
		"microsoft/iis:1.0.0.0":          "microsoft/iis",
		"host:5000/a/b@sha256:00":        "a/b",
	} {
		if got := RepositoryOf(in); got != want {
			t.Errorf("RepositoryOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLayersSkipsOthers(t *testing.T) {
	m := `{"schemaVersion":2,"layers":[
		{"mediaType":"application/octet-stream","digest":"sha256:` + strings.Repeat("a", 64) + `","size":3,"annotations":{"` + AnnotationSignature + `":"x"}},
		{"mediaType":"` + MediaTypeSimpleSigning + `","digest":"sha256:` + strings.Repeat("b", 64) + `","size":3},
		{"mediaType":"` + MediaTypeSimpleSigning + `","digest":"sha256:` + strings.Repeat("c", 64) + `","size":99999999,"annotations":{"` + AnnotationSignature + `":"x"}},
		{"mediaType":"` + MediaTypeSimpleSigning + `","digest":"sha256:` + strings.Repeat("d", 64) + `","size":3,"annotations":{"` + AnnotationSignature + `":"x"}}]}`
	layers, err := Layers([]byte(m))
	if err != nil || len(layers) != 1 || layers[0].Payload.Digest.Encoded() != strings.Repeat("d", 64) {
		t.Fatalf("layers %+v, %v", layers, err)
	}
}
