package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// TestWriteRefuses: Write fails with a clear error when an opener's bytes
// do not match the descriptor, and refuses bad images before writing.
func TestWriteRefuses(t *testing.T) {
	fx := newFixture(t)
	target := fx.images[0].Layers[0]
	serve := func(fn func([]byte) []byte) BlobOpener {
		return func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
			b := fx.blobs[desc.Digest]
			if desc.Digest == target.Digest {
				b = fn(bytes.Clone(b))
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}
	}
	badDigest := fx.images[0]
	badDigest.Config.Digest = "sha256:nothex"
	twoSizes := fx.images[1]
	twoSizes.Layers = append([]ocispec.Descriptor{}, twoSizes.Layers...)
	twoSizes.Layers[0].Size++
	wrongLayers := fx.images[1]
	wrongLayers.Layers = wrongLayers.Layers[:2]
	noMediaType := fx.images[0]
	noMediaType.Manifest.MediaType = ""

	tests := []struct {
		name        string
		images      []Image
		open        BlobOpener
		is          func(error) bool
		want        string
		emptyOutput bool // refused before anything is written
	}{
		{name: "changed bytes", images: fx.images, open: serve(func(b []byte) []byte { b[10] ^= 1; return b }),
			is: errdefs.IsFailedPrecondition, want: "bytes have digest"},
		{name: "short", images: fx.images, open: serve(func(b []byte) []byte { return b[:len(b)-1] }),
			is: errdefs.IsFailedPrecondition, want: "descriptor says"},
		{name: "long", images: fx.images, open: serve(func(b []byte) []byte { return append(b, 0) }),
			is: errdefs.IsFailedPrecondition, want: "more than"},
		{name: "open fails", images: fx.images, open: func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
			return nil, errdefs.ErrUnavailable
		}, is: errdefs.IsUnavailable, want: "open"},
		{name: "no image", images: nil, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "no image", emptyOutput: true},
		{name: "bad digest", images: []Image{badDigest}, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "nothex", emptyOutput: true},
		{name: "one digest, two sizes", images: []Image{fx.images[0], twoSizes}, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "size", emptyOutput: true},
		{name: "duplicate ref name", images: []Image{fx.images[0], fx.images[0]}, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "twice", emptyOutput: true},
		{name: "no manifest media type", images: []Image{noMediaType}, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "media type", emptyOutput: true},
		{name: "manifest lists other layers", images: []Image{fx.images[0], wrongLayers}, open: fx.opener(), is: errdefs.IsInvalidArgument, want: "layer count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(context.Background(), &buf, tc.images, tc.open)
			if !tc.is(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write: %v, want %q", err, tc.want)
			}
			if tc.emptyOutput && buf.Len() != 0 {
				t.Errorf("%d bytes written before the refusal", buf.Len())
			}
		})
	}
}

// patternReader yields n bytes of a fixed pattern without holding them.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		p[i] = byte((r.off + int64(i)) * 7 >> 3)
	}
	r.off += int64(len(p))
	return len(p), nil
}

func (r *patternReader) Close() error { return nil }

// heapSampler keeps the peak HeapInuse seen by a writer every few MiB.
type heapSampler struct {
	n, next, peak uint64
}

func (s *heapSampler) Write(p []byte) (int, error) {
	s.n += uint64(len(p))
	if s.n >= s.next {
		s.next = s.n + 8<<20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.peak = max(s.peak, ms.HeapInuse)
	}
	return len(p), nil
}

// TestWriteMemory: Write of a 256 MiB image streams it: the Go heap stays
// far below the image size.
func TestWriteMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	const layerSize = 256 << 20
	h := sha256.New()
	if _, err := io.Copy(h, &patternReader{n: layerSize}); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{blobs: map[digest.Digest][]byte{}}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.NewDigest(digest.SHA256, h), Size: layerSize}
	fx.addImage(t, "big:1.0.0.0", nil, []ocispec.Descriptor{layer}, 0)
	open := func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		if desc.Digest == layer.Digest {
			return &patternReader{n: layerSize}, nil
		}
		return fx.opener()(ctx, desc)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	s := &heapSampler{}
	if err := Write(context.Background(), s, fx.images, open); err != nil {
		t.Fatal(err)
	}
	if s.n < layerSize {
		t.Fatalf("archive of %d bytes, want more than %d", s.n, layerSize)
	}
	growth := int64(s.peak) - int64(before)
	t.Logf("heap in use grew by at most %d KiB while writing %d MiB", growth>>10, s.n>>20)
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB", growth>>20)
	}
}
