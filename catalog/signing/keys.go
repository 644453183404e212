package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Key algorithms of GenerateKeyPair.
const (
	KeyECDSAP256 = "ecdsa-p256" // cosign generate-key-pair's
	KeyEd25519   = "ed25519"
)

// GenerateKeyPair makes a key pair in cosign's files: the private key
// encrypted with password (which may be empty, as cosign allows, but
// never nil), and the public key.
func GenerateKeyPair(alg string, password []byte) (privatePEM, publicPEM []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case KeyECDSAP256, "":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("key algorithm %q: want %s or %s: %w", alg, KeyECDSAP256, KeyEd25519, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, passFunc(password))
	if err != nil {
		return nil, nil, fmt.Errorf("encrypting the private key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), pub, nil
}

// passFunc gives password to the sigstore library; cosign encrypts with
// an empty password too, and a nil one would skip the decryption.
func passFunc(password []byte) cryptoutils.PassFunc {
	if password == nil {
		password = []byte{}
	}
	return cryptoutils.StaticPasswordFunc(password)
}

// Signer signs payloads with a private key.
type Signer struct {
	sv signature.SignerVerifier
	// KeyID names the key: its public key's ID.
	KeyID string
}

// LoadSigner reads a cosign private key, decrypted with password. A wrong
// password or a file that is not a key is InvalidArgument.
func LoadSigner(privatePEM, password []byte) (*Signer, error) {
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(privatePEM, passFunc(password))
	if err != nil {
		return nil, fmt.Errorf("private key: %v (a wrong password?): %w", err, errdefs.ErrInvalidArgument)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("private key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	id, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{sv: sv, KeyID: id}, nil
}

// Sign signs payload and returns the signature in base64, as the
// signature annotation holds it.
func (s *Signer) Sign(payload []byte) (string, error) {
	sig, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("signing with key %s: %w", s.KeyID, err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Made reports whether sig, in base64, is this signer's signature of
// payload: ECDSA signatures differ at each signing, so a signature
// already there is found by verifying it.
func (s *Signer) Made(sigB64 string, payload []byte) bool {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	return err == nil && s.sv.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil
}

// PublicKeyPEM is the signer's public key, as cosign writes it.
func (s *Signer) PublicKeyPEM() ([]byte, error) {
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// PublicKey is a key that signatures are verified with.
type PublicKey struct {
	// ID is "sha256:" and the hex of the SHA-256 of the key's PKIX DER,
	// the same on every host, which errors and the Signed field show.
	ID string
	v  signature.Verifier
}

// LoadPublicKey reads a PKIX PUBLIC KEY PEM (cosign.pub): ECDSA, Ed25519
// or RSA.
func LoadPublicKey(publicPEM []byte) (PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicPEM)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if err := cryptoutils.ValidatePubKey(pub); err != nil {
		return PublicKey{}, fmt.Errorf("public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	id, err := keyID(pub)
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{ID: id, v: v}, nil
}

// verify checks sig, in base64, over payload.
func (k PublicKey) verify(sigB64 string, payload []byte) error {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return fmt.Errorf("the signature is not base64: %w", errdefs.ErrInvalidArgument)
	}
	return k.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload))
}

func keyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
