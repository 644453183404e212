package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/store/content"
)

// FuzzRead feeds archives to Read, and gzip-compressed ones to ReadFile.
// The seeds are a valid archive, its gzip, and every malicious case. The
// property: Read never panics; an error is an invalid argument and leaves
// the store, its ingests and the spool directory as they were (TooLarge for
// a gzip archive that decompresses beyond the limit); a success
// stores every blob that Contents names.
//
//	go test -fuzz=FuzzRead -fuzztime 30s -fuzzminimizetime 1x ./provider/archive/
//
// Tar inputs are kilobytes long (512-byte headers), and by default the
// fuzzer spends up to a minute minimizing each input that finds new
// coverage: with -fuzzminimizetime 1x it keeps fuzzing instead.
//
// One store serves every input of a worker, so that an execution costs no
// directory setup: inputs that succeed add blobs, and later inputs are
// checked against what the store held before them.
func FuzzRead(f *testing.F) {
	// One image keeps the seeds small, so that the fuzzer minimizes new
	// inputs quickly; the refusal tests use all three.
	fx := newFixture(f)
	fx.images = fx.images[:1]
	valid := fx.archive(f)
	f.Add(valid)
	f.Add(gzipped(f, valid))
	for _, c := range maliciousCases(f, fx) {
		f.Add(c.data)
	}

	root := f.TempDir()
	cs, err := content.NewStore(filepath.Join(root, "store"))
	if err != nil {
		f.Fatal(err)
	}
	file := filepath.Join(root, "archive")
	spool := filepath.Join(root, "spool")
	if err := os.Mkdir(spool, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		before, _ := storeState(t, cs)
		var c Contents
		var err error
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, oerr := os.Open(file)
			if oerr != nil {
				t.Fatal(oerr)
			}
			c, err = ReadFile(ctx, f, spool, cs, testLimits)
			f.Close()
			if left, _ := os.ReadDir(spool); len(left) != 0 {
				t.Fatalf("spool files left: %v", left)
			}
		} else {
			c, err = Read(ctx, bytes.NewReader(data), int64(len(data)), cs, testLimits)
		}

		after, ingests := storeState(t, cs)
		if len(ingests) != 0 {
			t.Fatalf("ingests left: %v (err %v)", ingests, err)
		}
		if err != nil {
			if !refusedClass(err) {
				t.Fatalf("error of another class: %v", err)
			}
			if !slices.Equal(before, after) {
				t.Fatalf("refused archive changed the store from %v to %v: %v", before, after, err)
			}
			return
		}
		if len(c.Images) == 0 {
			t.Fatal("success without an image")
		}
		for _, img := range c.Images {
			for _, d := range append([]ocispec.Descriptor{img.Manifest, img.Config}, img.Layers...) {
				if _, err := cs.Info(ctx, d.Digest); err != nil && !isNonDistributable(d.MediaType) {
					t.Fatalf("image %q: blob %s not stored: %v", img.RefName, d.Digest, err)
				}
			}
		}
		for d, b := range c.Manifests {
			if d.Algorithm().FromBytes(b) != d {
				t.Fatalf("manifest %s: bytes do not match", d)
			}
		}
	})
}
