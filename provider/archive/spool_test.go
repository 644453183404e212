package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// limitedWriter fails once more than max bytes are written to it, as a
// full disk does.
type limitedWriter struct {
	bytes.Buffer
	max int
}

var errFull = errors.New("disk full")

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > w.max {
		return 0, errFull
	}
	return w.Buffer.Write(p)
}

// countReader counts the bytes read from r.
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSpool(t *testing.T) {
	ctx := context.Background()
	valid := newFixture(t).archive(t)
	big := retar(t, []tarEntry{fileEntry(blobPath(digest.FromString("z")), make([]byte, 8<<20))})
	tests := []struct {
		name   string
		in     []byte
		limits Limits
		max    int // of the writer, 0 for none
		want   error
		text   string
		// readAtMost bounds the input that Spool reads before it stops.
		readAtMost int
	}{
		{name: "archive", in: valid},
		{name: "gzip archive", in: gzipped(t, valid)},
		{name: "zeros", in: make([]byte, 4<<20), want: errdefs.ErrInvalidArgument, text: "not a tar archive", readAtMost: 1 << 20},
		{name: "gzip of zeros", in: gzipped(t, make([]byte, 64<<20)), want: errdefs.ErrInvalidArgument, text: "not a tar archive", readAtMost: 1 << 20},
		{name: "text", in: []byte(strings.Repeat("root:x:0:0::/root:/bin/sh\n", 1000)), want: errdefs.ErrInvalidArgument, text: "not a tar archive"},
		{name: "over the limit", in: gzipped(t, big), limits: Limits{MaxTotal: 1 << 20}, want: errdefs.ErrTooLarge, text: "more than 1048576 bytes"},
		{name: "full disk", in: big, max: 1 << 20, want: errFull, readAtMost: 3 << 20},
		{name: "unknown entry first", in: retar(t, []tarEntry{fileEntry("evil.sh", []byte("#!"))}), want: errdefs.ErrInvalidArgument, text: "neither part"},
		{name: "link", in: retar(t, []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs", Linkname: "/etc"}}}),
			want: errdefs.ErrInvalidArgument, text: "symlink"},
		{name: "sparse", in: sparseTar(blobPath(digest.FromString("s")), false), want: errdefs.ErrInvalidArgument, text: "sparse"},
		{name: "trailer of zeros over 1 MiB", in: append(slices.Clone(valid), make([]byte, 2<<20)...),
			want: errdefs.ErrInvalidArgument, text: "after the end of the tar"},
		{name: "trailer of data", in: append(slices.Clone(valid), "junk"...), want: errdefs.ErrInvalidArgument, text: "data after the end"},
		{name: "truncated", in: valid[:len(valid)/2], want: errdefs.ErrInvalidArgument, text: "truncated"},
		{name: "JSON file over the limit", in: retar(t, []tarEntry{fileEntry("index.json", make([]byte, 9000))}), limits: testLimits,
			want: errdefs.ErrInvalidArgument, text: "over the JSON limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out limitedWriter
			out.max = tt.max
			if out.max == 0 {
				out.max = 1 << 40
			}
			in := &countReader{r: bytes.NewReader(tt.in)}
			n, err := Spool(ctx, &out, in, tt.limits)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if int(n) != len(valid) || !bytes.Equal(out.Bytes(), valid) {
					t.Fatalf("spooled %d bytes, want the %d of the archive", n, len(valid))
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Spool: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Spool: %v, want it to say %q", err, tt.text)
			}
			if tt.readAtMost > 0 && in.n > tt.readAtMost {
				t.Errorf("read %d bytes before the refusal, want at most %d", in.n, tt.readAtMost)
			}
		})
	}
}

// TestSpoolCancelled: Spool stops when its context ends.
func TestSpoolCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Spool(ctx, io.Discard, bytes.NewReader(newFixture(t).archive(t)), Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Spool: %v, want canceled", err)
	}
}

func TestBaseImages(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	img := func(name string, diffIDs ...string) imageFacts {
		f := imageFacts{digest: d(name), known: true}
		for _, s := range diffIDs {
			f.diffIDs = append(f.diffIDs, d(s))
		}
		return f
	}
	on := func(f imageFacts, base string) imageFacts { f.base = d(base); return f }
	unknown := func(f imageFacts) imageFacts { f.known = false; f.diffIDs = nil; return f }
	tests := []struct {
		name   string
		images []imageFacts
		want   []bool
	}{
		{"one image", []imageFacts{img("1", "a")}, []bool{false}},
		{"base and child", []imageFacts{img("1", "a"), img("2", "a", "b")}, []bool{true, false}},
		{"child first", []imageFacts{img("1", "a", "b", "c"), img("2", "a", "b")}, []bool{false, true}},
		{"siblings", []imageFacts{img("1", "a"), img("2", "a", "b"), img("3", "a", "c")}, []bool{true, false, false}},
		{"same layers", []imageFacts{img("1", "a", "b"), img("2", "a", "b")}, []bool{false, false}},
		{"other base", []imageFacts{img("1", "x"), img("2", "a", "b")}, []bool{false, false}},
		{"no layers", []imageFacts{img("1"), img("2", "a")}, []bool{true, false}},
		// A child recompressed with zstd: other layer digests, the same
		// diff_ids, and its manifest names the base.
		{"base named by the child", []imageFacts{img("1", "x"), on(img("2", "y", "z"), "1")}, []bool{true, false}},
		{"config unread", []imageFacts{unknown(img("1")), img("2", "a")}, []bool{false, false}},
		{"config unread, named", []imageFacts{unknown(img("1")), on(img("2", "a"), "1")}, []bool{true, false}},
		{"names itself", []imageFacts{on(img("1", "a"), "1")}, []bool{false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := baseImages(tt.images); !slices.Equal(got, tt.want) {
				t.Errorf("baseImages = %v, want %v", got, tt.want)
			}
		})
	}
}

// tarOf is a tar of files name=body.
func tarOf(t testing.TB, files ...string) []byte {
	var es []tarEntry
	for _, f := range files {
		name, body, _ := strings.Cut(f, "=")
		es = append(es, fileEntry(name, []byte(body)))
	}
	return retar(t, es)
}

func TestCheckLayer(t *testing.T) {
	layer := tarOf(t, "etc/motd=hello", "bin/app=binary")
	tests := []struct {
		name   string
		data   []byte
		format layerFormat
		text   string // empty: accepted
	}{
		{name: "tar", data: layer, format: formatTar},
		{name: "gzip", data: gzipped(t, layer), format: formatGzip},
		{name: "zstd", data: zstdOf(t, layer), format: formatZstd},
		{name: "empty tar", data: make([]byte, 1024), format: formatTar},
		{name: "gzip of an empty tar", data: gzipped(t, make([]byte, 1024)), format: formatGzip},
		{name: "padded to a record", data: append(slices.Clone(layer), make([]byte, 10240)...), format: formatTar},
		{name: "text", data: []byte("root:x:0:0::/root:/bin/sh\n"), format: formatTar, text: "not a tar"},
		{name: "tar as gzip", data: layer, format: formatGzip, text: "not gzip"},
		{name: "gzip as zstd", data: gzipped(t, layer), format: formatZstd, text: "zstd"},
		{name: "truncated", data: layer[:1024+100], format: formatTar, text: "not a tar"},
		{name: "corrupt gzip", data: corrupt(gzipped(t, layer)), format: formatGzip, text: "tar+gzip"},
		{name: "junk after the tar", data: append(slices.Clone(layer), "junk"...), format: formatTar, text: "after the end"},
		{name: "zeros after the tar over the bound", data: append(slices.Clone(layer), make([]byte, maxLayerPadding+1024)...), format: formatTar,
			text: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLayer(bytes.NewReader(tt.data), tt.format)
			if tt.text == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("checkLayer: %v, want an invalid argument saying %q", err, tt.text)
			}
		})
	}
}

// corrupt flips a byte in the middle of b.
func corrupt(b []byte) []byte {
	b = slices.Clone(b)
	b[len(b)/2] ^= 0xff
	return b
}

func TestLayerFormatOf(t *testing.T) {
	for mt, want := range map[string]layerFormat{
		ocispec.MediaTypeImageLayer:                                    formatTar,
		ocispec.MediaTypeImageLayerGzip:                                formatGzip,
		ocispec.MediaTypeImageLayerZstd:                                formatZstd,
		mediaTypeDockerLayerGzip:                                       formatGzip,
		mediaTypeDockerForeignBlob:                                     formatGzip,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": formatZstd,
	} {
		if got, err := layerFormatOf(mt); err != nil || got != want {
			t.Errorf("layerFormatOf(%q) = %v, %v; want %v", mt, got, err, want)
		}
	}
	for _, mt := range []string{"", "application/octet-stream", ocispec.MediaTypeImageConfig} {
		if _, err := layerFormatOf(mt); !errdefs.IsInvalidArgument(err) {
			t.Errorf("layerFormatOf(%q): %v, want an invalid argument", mt, err)
		}
	}
}

// TestPrepareThenAbort: a prepared archive that is aborted leaves the
// store as it was, and Blobs names every blob its images reference.
func TestPrepareThenAbort(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	a := fx.archive(t)
	cs := newStore(t)
	pr, err := Prepare(ctx, bytes.NewReader(a), int64(len(a)), cs, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := pr.Blobs(); len(got) != len(fx.blobs) {
		t.Errorf("Blobs lists %d digests, want %d", len(got), len(fx.blobs))
	}
	if blobs, ingests := storeState(t, cs); len(blobs) != 0 || len(ingests) != len(fx.blobs) {
		t.Errorf("after Prepare: %d blobs and %d ingests, want 0 and %d", len(blobs), len(ingests), len(fx.blobs))
	}
	pr.Abort(ctx)
	if blobs, ingests := storeState(t, cs); len(blobs)+len(ingests) != 0 {
		t.Errorf("after Abort: %d blobs and %d ingests", len(blobs), len(ingests))
	}
}

// zstdOf compresses b with zstd.
func zstdOf(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}
