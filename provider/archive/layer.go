package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// layerFormat is what the bytes of a layer are, as its media type says.
type layerFormat int

const (
	notLayer   layerFormat = iota // a manifest or a config
	formatTar                     // an uncompressed tar
	formatGzip                    // a tar compressed with gzip
	formatZstd                    // a tar compressed with zstd
)

func (f layerFormat) String() string {
	switch f {
	case formatTar:
		return "tar"
	case formatGzip:
		return "tar+gzip"
	case formatZstd:
		return "tar+zstd"
	}
	return "not a layer"
}

// Docker's layer media types that image-spec does not define.
const (
	mediaTypeDockerLayer     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// layerFormatOf is the format of a layer of media type mt, or an
// InvalidArgument error when mt is not a layer media type this package
// can check: the bytes of an archive's layers are always checked, so a
// layer cannot carry arbitrary bytes under a made-up type.
func layerFormatOf(mt string) (layerFormat, error) {
	switch mt {
	case ocispec.MediaTypeImageLayer, mediaTypeDockerLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar":
		return formatTar, nil
	case ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayerGzip, mediaTypeDockerForeignBlob,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip":
		return formatGzip, nil
	case ocispec.MediaTypeImageLayerZstd,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return formatZstd, nil
	}
	return notLayer, fmt.Errorf("layer media type %q is not a tar, tar+gzip or tar+zstd layer: %w", mt, errdefs.ErrInvalidArgument)
}

// maxLayerPadding bounds the bytes a layer's tar may have after its
// end-of-archive marker (tar writers pad to a record, 10 KiB for GNU tar).
// They must be zeros.
const maxLayerPadding = 1 << 20

// zstdMaxWindow bounds the window a zstd layer may ask the decoder to
// allocate: 128 MiB, zstd's --long default.
const zstdMaxWindow = 1 << 27

// checkLayer reads r to its end and reports whether it is a whole tar in
// format f: every header valid, the data of each entry whole, nothing but
// zeros (at most maxLayerPadding bytes) after the end-of-archive marker,
// and the compression stream, if any, whole and verified (the gzip CRC). It
// returns an InvalidArgument error describing the first fault, or the error
// of r.
func checkLayer(r io.Reader, f layerFormat) error {
	var src io.Reader
	switch f {
	case formatTar:
		src = r
	case formatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return badLayer("not gzip: %v", err)
		}
		defer zr.Close()
		src = zr
	case formatZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return badLayer("not zstd: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil
	}
	tr := tar.NewReader(src)
	buf := make([]byte, 256<<10)
	discard := struct{ io.Writer }{io.Discard} // no ReaderFrom: copy through buf
	for n := 0; ; n++ {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badLayer("not a %s: entry %d: %v", f, n, err)
		}
		if _, err := io.CopyBuffer(discard, tr, buf); err != nil {
			return badLayer("not a %s: entry %d: %v", f, n, err)
		}
	}
	return checkPadding(src, maxLayerPadding, buf)
}

// checkPadding reads what follows the end of a tar from src, at most max
// bytes, all zeros.
func checkPadding(src io.Reader, max int64, buf []byte) error {
	var total int64
	for {
		n, err := src.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return badLayer("data after the end of the tar")
			}
		}
		if total += int64(n); total > max {
			return badLayer("more than %d bytes after the end of the tar", max)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return badLayer("after the end of the tar: %v", err)
		}
	}
}

// badLayer is the InvalidArgument error of a layer whose bytes are not
// what its media type says.
func badLayer(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// layerCheck checks the bytes of a layer on a goroutine of its own while
// they are copied elsewhere: Write hands each chunk to the checker and
// returns once it has read it, so that a copy that writes the same chunk
// to the store at the same time pays for the slower of the two. It is the
// hash argument of content.CopyAhead, which never looks at Write's error.
type layerCheck struct {
	pw   *io.PipeWriter
	done chan error
}

// startLayerCheck starts checking a layer of format f.
func startLayerCheck(f layerFormat) *layerCheck {
	pr, pw := io.Pipe()
	lc := &layerCheck{pw: pw, done: make(chan error, 1)}
	go func() {
		err := checkLayer(pr, f)
		// Whatever the verdict, later writes must not wait for a
		// reader that is gone.
		pr.CloseWithError(errCheckDone)
		lc.done <- err
	}()
	return lc
}

// errCheckDone fails the writes that come after the checker has ended.
var errCheckDone = errors.New("layer check ended")

func (lc *layerCheck) Write(p []byte) (int, error) { return lc.pw.Write(p) }

// finish tells the checker that the layer ends here, or, with a non-nil
// failed, that the copy failed and the verdict does not matter; it returns
// the verdict.
func (lc *layerCheck) finish(failed error) error {
	if failed != nil {
		lc.pw.CloseWithError(failed)
		<-lc.done
		return failed
	}
	lc.pw.Close()
	return <-lc.done
}
