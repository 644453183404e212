package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// maliciousCase is an archive that Read must refuse, and a part of the
// error message that says why.
type maliciousCase struct {
	name string
	data []byte
	want string
	// class is the error class, InvalidArgument when nil.
	class error
}

// refusedClass reports whether err is of a class that a refused archive
// may have: InvalidArgument, or TooLarge for one over Limits.MaxTotal.
func refusedClass(err error) bool {
	return errdefs.IsInvalidArgument(err) || errdefs.IsTooLarge(err)
}

// openFile writes data to a file in dir and opens it; the test closes it.
func openFile(t testing.TB, dir string, data []byte) *os.File {
	t.Helper()
	name := filepath.Join(dir, "archive.tar")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fileEntry(name string, data []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}

// edit returns a copy of es with the entry name changed by fn (removed
// when fn returns nil).
func edit(es []tarEntry, name string, fn func(tarEntry) *tarEntry) []tarEntry {
	var out []tarEntry
	for _, e := range es {
		if e.hdr.Name != name {
			out = append(out, e)
			continue
		}
		if ne := fn(tarEntry{hdr: e.hdr, data: slices.Clone(e.data)}); ne != nil {
			out = append(out, *ne)
		}
	}
	return out
}

func drop(es []tarEntry, name string) []tarEntry {
	return edit(es, name, func(tarEntry) *tarEntry { return nil })
}

func editJSON(t testing.TB, es []tarEntry, name string, v any, fn func()) []tarEntry {
	return edit(es, name, func(e tarEntry) *tarEntry {
		if err := json.Unmarshal(e.data, v); err != nil {
			t.Fatal(err)
		}
		fn()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		e.data = b
		return &e
	})
}

// maliciousCases are the archives Read refuses. They are built from a valid
// archive of fx and share testLimits.
func maliciousCases(t testing.TB, fx *fixture) []maliciousCase {
	valid := fx.archive(t)
	es := untar(t, valid)
	base := fx.images[0]
	layer := base.Layers[0]
	layerName := blobPath(layer.Digest)
	// The layer with the greatest digest is ingested last: every other new
	// blob is in an ingest when its digest turns out wrong.
	lastLayer := layer
	for _, img := range fx.images {
		for _, l := range img.Layers {
			if l.Digest > lastLayer.Digest {
				lastLayer = l
			}
		}
	}
	extra := []byte("not referenced by any descriptor")

	var cases []maliciousCase
	add := func(name, want string, data []byte) {
		cases = append(cases, maliciousCase{name: name, data: data, want: want})
	}
	add("tar slip", `"../x"`, retar(t, append(slices.Clone(es), fileEntry("../x", []byte("x")))))
	add("nested tar slip", `"blobs/../../x"`, retar(t, append(slices.Clone(es), fileEntry("blobs/../../x", []byte("x")))))
	add("absolute name", `"/etc/x": absolute`, retar(t, append(slices.Clone(es), fileEntry("/etc/x", []byte("x")))))
	add("symlink", "symlink", retar(t, append(slices.Clone(es),
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs/sha256/" + digest.FromString("l").Encoded(), Linkname: "/etc/passwd"}})))
	add("symlink escape then write through it", "symlink", retar(t, append([]tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs", Linkname: "/tmp"}}}, es[2:]...)))
	add("hard link", "hard link", retar(t, append(slices.Clone(es),
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "evil", Linkname: "index.json"}})))
	add("device", "device", retar(t, append(slices.Clone(es),
		tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}})))
	add("duplicate index.json", `"index.json": duplicate`, retar(t, append(slices.Clone(es), fileEntry("index.json", []byte(`{"schemaVersion":2,"manifests":[]}`)))))
	layerEntry := slices.IndexFunc(es, func(e tarEntry) bool { return e.hdr.Name == layerName })
	add("duplicate blob", "duplicate", retar(t, append(slices.Clone(es), es[layerEntry])))
	add("size mismatch", layerName, retar(t, edit(es, layerName, func(e tarEntry) *tarEntry {
		e.data = append(e.data, "more"...)
		return &e
	})))
	add("unreferenced blob", "no descriptor refers", retar(t, append(slices.Clone(es), fileEntry(blobPath(digest.FromBytes(extra)), extra))))
	add("missing index.json", "index.json is missing", retar(t, drop(es, "index.json")))
	add("missing oci-layout", "oci-layout is missing", retar(t, drop(es, "oci-layout")))
	add("missing blob", "is missing", retar(t, drop(es, layerName)))
	add("wrong digest", "bytes have digest", retar(t, edit(es, blobPath(lastLayer.Digest), func(e tarEntry) *tarEntry {
		e.data[len(e.data)/2] ^= 0xff
		return &e
	})))
	add("wrong config digest", "bytes have digest", retar(t, edit(es, blobPath(base.Config.Digest), func(e tarEntry) *tarEntry {
		e.data = bytes.Replace(e.data, []byte("windows"), []byte("linux00"), 1)
		return &e
	})))
	cut := bytes.Index(valid, fx.blobs[layer.Digest]) + int(layer.Size)/2
	add("truncated in a blob", "truncated", valid[:cut])
	add("oversize index.json", `"index.json": 8193 bytes, over the JSON limit`, retar(t, edit(es, "index.json", func(e tarEntry) *tarEntry {
		e.data = append(e.data, bytes.Repeat([]byte(" "), 8193-len(e.data))...)
		return &e
	})))
	var idx ocispec.Index
	add("oversize declared manifest", "declares", retar(t, editJSON(t, es, "index.json", &idx, func() { idx.Manifests[0].Size += 1000 })))
	idx = ocispec.Index{}
	add("index lists an index", "not an image manifest", retar(t, editJSON(t, es, "index.json", &idx, func() { idx.Manifests[len(idx.Manifests)-1].MediaType = ocispec.MediaTypeImageIndex })))
	var docker []dockerManifestEntry
	add("manifest.json disagrees", "matches no image", retar(t, editJSON(t, es, "manifest.json", &docker, func() { slices.Reverse(docker[0].Layers) })))
	docker = nil
	add("manifest.json misses an image", "no image", retar(t, editJSON(t, es, "manifest.json", &docker, func() { docker = docker[:len(docker)-1] })))
	add("index.json not JSON", `"index.json"`, retar(t, edit(es, "index.json", func(e tarEntry) *tarEntry {
		e.data = []byte("{")
		return &e
	})))
	add("unknown entry", "neither part", retar(t, append(slices.Clone(es), fileEntry("evil.sh", []byte("#!/bin/sh")))))
	add("bad blob name", "blobs/sha256/NOTHEX", retar(t, append(slices.Clone(es), fileEntry("blobs/sha256/NOTHEX", []byte("x")))))
	add("md5 blob", "not sha256 or sha512", retar(t, append(slices.Clone(es), fileEntry("blobs/md5/"+strings.Repeat("0", 32), []byte("x")))))
	many := slices.Clone(es)
	for i := range testLimits.MaxEntries - len(es) + 1 {
		b := []byte(fmt.Sprint(i))
		many = append(many, fileEntry(blobPath(digest.FromBytes(b)), b))
	}
	add("too many entries", fmt.Sprintf("more than %d entries", testLimits.MaxEntries), retar(t, many))
	add("data after the tar", "after the end", append(slices.Clone(valid), "junk"...))
	add("gzip bomb of zeros", "not a tar archive", gzipped(t, make([]byte, 1<<20)))
	cases = append(cases, maliciousCase{name: "gzip bomb in a blob", want: fmt.Sprintf("more than %d bytes", testLimits.MaxTotal),
		class: errdefs.ErrTooLarge, data: gzipped(t, retar(t, []tarEntry{fileEntry(blobPath(digest.FromString("z")), make([]byte, 1<<20))}))})
	for _, pax := range []bool{false, true} {
		// The sparse entry first, without its end-of-archive marker, then
		// the valid archive.
		sp := sparseTar(blobPath(digest.FromString("s")), pax)
		b := append(sp[:len(sp)-1024:len(sp)-1024], valid...)
		add(fmt.Sprintf("sparse entry (pax %v)", pax), "sparse file", b)
	}

	// Layers whose bytes are not what their media type says.
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
	for _, lc := range []struct {
		name, mediaType, want string
		data                  []byte
	}{
		{"text as a tar layer", ocispec.MediaTypeImageLayer, "not a tar", passwd},
		{"text as a gzip layer", ocispec.MediaTypeImageLayerGzip, "not gzip", passwd},
		{"gzipped text as a gzip layer", ocispec.MediaTypeImageLayerGzip, "not a tar+gzip", gzipped(t, passwd)},
		{"text as a zstd layer", ocispec.MediaTypeImageLayerZstd, "zstd", passwd},
		{"tar with junk after it", ocispec.MediaTypeImageLayer, "after the end of the tar",
			append(retar(t, []tarEntry{fileEntry("etc/motd", []byte("hi"))}), passwd...)},
		{"unknown media type", "application/octet-stream", "is not a tar, tar+gzip or tar+zstd layer", passwd},
	} {
		bad := &fixture{blobs: map[digest.Digest][]byte{}}
		bad.addImage(t, "bad:1.0.0.0", nil, []ocispec.Descriptor{bad.blob(lc.data, lc.mediaType)}, 0)
		add(lc.name, lc.want, bad.archive(t))
	}
	confused := &fixture{blobs: map[digest.Digest][]byte{}}
	cfgAsLayer := confused.addImage(t, "first:1.0.0.0", nil, []ocispec.Descriptor{confused.blob(layerBytes(t, 11, 50), ocispec.MediaTypeImageLayerGzip)}, 0)
	confused.addImage(t, "second:1.0.0.0", nil, []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: cfgAsLayer.Config.Digest, Size: cfgAsLayer.Config.Size}}, 0)
	add("a config as a layer", "not a tar", confused.archive(t))
	add("truncated gzip", "gzip", gzipped(t, valid)[:200])

	big := &fixture{blobs: map[digest.Digest][]byte{}}
	big.addImage(t, "big:1.0.0.0", nil, []ocispec.Descriptor{big.blob(layerBytes(t, 7, 100), ocispec.MediaTypeImageLayerGzip)}, 9000)
	add("oversize config", "over the JSON limit", big.archive(t))
	return append(cases, dockerCases(t)...)
}

// TestReadRefuses: each malicious archive is refused as an invalid
// argument naming the problem, and leaves the store, the ingests and the
// spool directory as they were.
func TestReadRefuses(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	for _, tc := range maliciousCases(t, fx) {
		t.Run(tc.name, func(t *testing.T) {
			cs := newStore(t)
			// The store already holds one blob of the archive, and one other.
			shared := fx.images[0].Layers[1].Digest
			for _, b := range [][]byte{fx.blobs[shared], []byte("unrelated")} {
				if _, err := content.WriteBlob(ctx, cs, "seed", bytes.NewReader(b), int64(len(b)), digest.FromBytes(b)); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := storeState(t, cs)
			dir := t.TempDir()
			f := openFile(t, dir, tc.data)
			spool := filepath.Join(dir, "spool")
			if err := os.Mkdir(spool, 0o755); err != nil {
				t.Fatal(err)
			}

			_, err := ReadFile(ctx, f, spool, cs, testLimits)
			class := tc.class
			if class == nil {
				class = errdefs.ErrInvalidArgument
			}
			if !errors.Is(err, class) {
				t.Fatalf("ReadFile: %v, want class %v", err, class)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadFile: %v, want it to say %q", err, tc.want)
			}
			after, ingests := storeState(t, cs)
			if !slices.Equal(after, before) || len(ingests) != 0 {
				t.Errorf("store changed: blobs %v -> %v, ingests %v", before, after, ingests)
			}
			if left, _ := os.ReadDir(spool); len(left) != 0 {
				t.Errorf("spool directory not empty: %v", left)
			}
			if left, _ := os.ReadDir(dir); len(left) != 2 {
				t.Errorf("files written next to the archive: %v", left)
			}
		})
	}
}

func TestReadFileGzip(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	dir := t.TempDir()
	f := openFile(t, dir, gzipped(t, fx.archive(t)))
	cs := newStore(t)
	c, err := ReadFile(ctx, f, dir, cs, testLimits)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	assertImages(t, c.Images, fx.images)
	if blobs, _ := storeState(t, cs); len(blobs) != len(fx.blobs) {
		t.Errorf("%d blobs in the store, want %d", len(blobs), len(fx.blobs))
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("spool file left: %v", left)
	}
}

func TestReadFileErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := ReadFile(ctx, d, dir, newStore(t), testLimits); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadFile of a directory: %v, want an invalid argument", err)
	}
}

// TestReadMaxTotal: an archive bigger than MaxTotal is refused before it
// is read.
func TestReadMaxTotal(t *testing.T) {
	a := newFixture(t).archive(t)
	cs := newStore(t)
	_, err := Read(context.Background(), bytes.NewReader(a), int64(len(a)), cs, Limits{MaxTotal: int64(len(a)) - 1})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("Read: %v", err)
	}
	if blobs, ingests := storeState(t, cs); len(blobs)+len(ingests) != 0 {
		t.Errorf("store changed")
	}
}

// TestReadCancelled: a cancelled read leaves nothing behind.
func TestReadCancelled(t *testing.T) {
	a := newFixture(t).archive(t)
	cs := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, bytes.NewReader(a), int64(len(a)), cs, testLimits); err != context.Canceled {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	if blobs, ingests := storeState(t, cs); len(blobs)+len(ingests) != 0 {
		t.Errorf("store changed")
	}
}

// rawHeader is one 512-byte tar header in the GNU format, checksum
// included, for the headers that archive/tar does not write (a GNU sparse
// file, a PAX header of sparse records). A GNU sparse header gets
// realSize, with no data block and no sparse entry: all holes.
func rawHeader(name string, typ byte, size, realSize int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 0))
	b[156] = typ
	copy(b[257:265], "ustar  \x00")
	if typ == tar.TypeGNUSparse {
		copy(b[483:495], fmt.Sprintf("%011o\x00", realSize))
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// padded is b followed by zeros up to a multiple of 512 bytes.
func padded(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// paxRecord is one record of a PAX header, "<length> key=value\n".
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for len(fmt.Sprint(n+len(fmt.Sprint(n)))) != len(fmt.Sprint(n)) {
		n++
	}
	n += len(fmt.Sprint(n))
	return fmt.Sprint(n) + rec
}

// sparseTar is a tar of one sparse file name of 4 GiB, with one byte of
// data: GNU's old format, or PAX's 0.1 records.
func sparseTar(name string, pax bool) []byte {
	var out []byte
	if !pax {
		out = append(out, rawHeader(name, tar.TypeGNUSparse, 0, 4<<30)...)
	} else {
		recs := paxRecord("GNU.sparse.size", "4294967296") + paxRecord("GNU.sparse.numblocks", "1") +
			paxRecord("GNU.sparse.map", "4294967295,1")
		out = append(out, rawHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(recs)), 0)...)
		out = append(out, padded([]byte(recs))...)
		out = append(out, rawHeader(name, tar.TypeReg, 1, 0)...)
		out = append(out, padded([]byte{'x'})...)
	}
	return append(out, make([]byte, 1024)...)
}
