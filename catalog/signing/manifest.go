package signing

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// MaxManifestSize bounds a signature manifest read from a source.
const MaxManifestSize = 256 << 10

// Signed is one signature layer of a signature manifest: the payload's
// descriptor and the signature in base64.
type Signed struct {
	Payload   ocispec.Descriptor
	Signature string
}

// Layers are the signature layers of the signature manifest b, in order,
// at most MaxSignatures; other layers are left out.
func Layers(b []byte) ([]Signed, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("signature manifest: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []Signed
	for _, l := range m.Layers {
		sig, ok := l.Annotations[AnnotationSignature]
		if l.MediaType != MediaTypeSimpleSigning || !ok || l.Size <= 0 || l.Size > MaxPayloadSize {
			continue
		}
		if err := l.Digest.Validate(); err != nil {
			continue
		}
		out = append(out, Signed{Payload: l, Signature: sig})
		if len(out) == MaxSignatures {
			break
		}
	}
	return out, nil
}

// Manifest is a signature manifest to push: its bytes, and the config and
// payload blobs it names.
type Manifest struct {
	Body    []byte
	Config  []byte
	Payload []byte
}

// AppendSignature is the signature manifest prev (nil: none yet) with one
// more layer, the payload signed by sig: cosign's layout, an OCI manifest
// whose config lists the layers' digests as its diff_ids. A layer with the
// same payload and signature already there is not added twice.
func AppendSignature(prev []byte, payload []byte, sig string) (Manifest, error) {
	layer := ocispec.Descriptor{
		MediaType:   MediaTypeSimpleSigning,
		Digest:      digest.FromBytes(payload),
		Size:        int64(len(payload)),
		Annotations: map[string]string{AnnotationSignature: sig},
	}
	var layers []ocispec.Descriptor
	if prev != nil {
		var m ocispec.Manifest
		if err := json.Unmarshal(prev, &m); err != nil {
			return Manifest{}, fmt.Errorf("signature manifest: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		layers = m.Layers
	}
	dup := false
	for _, l := range layers {
		if l.Digest == layer.Digest && l.Annotations[AnnotationSignature] == sig {
			dup = true
		}
	}
	if !dup {
		layers = append(layers, layer)
	}
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	config, err := json.Marshal(ocispec.Image{
		RootFS:  ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		History: []ocispec.History{{}},
	})
	if err != nil {
		return Manifest{}, err
	}
	body, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(config),
			Size:      int64(len(config)),
		},
		Layers: layers,
	})
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Body: body, Config: config, Payload: payload}, nil
}
