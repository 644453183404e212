package content

import (
	"bytes"
	"crypto/sha256"
	"io"
	"slices"
	"testing"
	"testing/iotest"
	"time"
)

// failAfter accepts limit bytes, then fails every write.
type failAfter struct {
	limit int
	got   bytes.Buffer
}

func (w *failAfter) Write(p []byte) (int, error) {
	if room := w.limit - w.got.Len(); len(p) > room {
		w.got.Write(p[:max(room, 0)])
		return max(room, 0), io.ErrClosedPipe
	}
	return w.got.Write(p)
}

// TestCopyAhead: every byte reaches the destination, and the hash when
// there is one, whatever the read sizes; a failed write or read stops the
// copy with its error and the count of bytes written.
func TestCopyAhead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (aheadDepth+1)*aheadChunk/16+4099) // more than aheadDepth chunks, not a multiple
	for _, tc := range []struct {
		name string
		in   []byte
		wrap func(io.Reader) io.Reader
	}{
		{"whole reads", data, func(r io.Reader) io.Reader { return r }},
		{"half reads", data, iotest.HalfReader},
		{"one byte reads", data[:5000], iotest.OneByteReader},
		{"data with EOF", data, iotest.DataErrReader},
		{"empty", nil, func(r io.Reader) io.Reader { return r }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, hashed := range []bool{true, false} {
				var dst bytes.Buffer
				h := sha256.New()
				var hw io.Writer
				if hashed {
					hw = h
				}
				n, err := CopyAhead(&dst, tc.wrap(bytes.NewReader(tc.in)), hw, 0)
				if err != nil || n != int64(len(tc.in)) {
					t.Fatalf("copied %d, %v; want %d bytes", n, err, len(tc.in))
				}
				if !bytes.Equal(dst.Bytes(), tc.in) {
					t.Fatal("destination differs from the source")
				}
				if want := sha256.Sum256(tc.in); hashed && !bytes.Equal(h.Sum(nil), want[:]) {
					t.Fatal("hash differs from the source's")
				}
			}
		})
	}
	w := &failAfter{limit: copyBufferSize + 100_000}
	n, err := CopyAhead(w, bytes.NewReader(data), sha256.New(), 0)
	if err != io.ErrClosedPipe || n != int64(w.limit) || !bytes.Equal(w.got.Bytes(), data[:w.limit]) {
		t.Fatalf("failing writer: copied %d, %v; want %d and io.ErrClosedPipe", n, err, w.limit)
	}
	broken := io.MultiReader(bytes.NewReader(data[:copyBufferSize+10]), iotest.ErrReader(io.ErrUnexpectedEOF))
	var dst bytes.Buffer
	n, err = CopyAhead(&dst, iotest.ErrReader(io.ErrNoProgress), nil, 0)
	if err != io.ErrNoProgress || n != 0 {
		t.Fatalf("failing reader: copied %d, %v; want 0 and its error", n, err)
	}
	n, err = CopyAhead(&dst, broken, nil, 0)
	if err != io.ErrUnexpectedEOF || n != copyBufferSize+10 || !bytes.Equal(dst.Bytes(), data[:n]) {
		t.Fatalf("reader failing after %d bytes: copied %d, %v; want them and its error", copyBufferSize+10, n, err)
	}
	dst.Reset()
	n, err = CopyAhead(&dst, iotest.TimeoutReader(bytes.NewReader(data)), nil, 0)
	if err != iotest.ErrTimeout || n != aheadChunk {
		t.Fatalf("reader failing on its second read: copied %d, %v; want %d and its error", n, err, aheadChunk)
	}
}

// sizes records the size of every write.
type sizes struct {
	bytes.Buffer
	writes []int
}

func (s *sizes) Write(p []byte) (int, error) {
	s.writes = append(s.writes, len(p))
	return s.Buffer.Write(p)
}

// TestCopyAheadAligns: from an offset that is not aligned, the first
// chunk is cut short, and every later one starts at an aligned offset.
func TestCopyAheadAligns(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 3*aheadChunk)
	const offset = 3*DirectIOAlign + 100
	var dst sizes
	n, err := CopyAhead(&dst, iotest.HalfReader(bytes.NewReader(data)), nil, offset)
	if err != nil || n != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("copied %d, %v", n, err)
	}
	want := []int{aheadChunk - 100, aheadChunk, aheadChunk, 100}
	if !slices.Equal(dst.writes, want) {
		t.Fatalf("writes of %v bytes, want %v", dst.writes, want)
	}
}

// TestCopyAheadClosesSourceOnFailedWrite: a write that fails while the
// reading goroutine waits for more of a connection closes the source, so
// that CopyAhead returns instead of waiting for bytes that may never come.
func TestCopyAheadClosesSourceOnFailedWrite(t *testing.T) {
	pr, pw := io.Pipe()
	go pw.Write(make([]byte, aheadChunk)) // one chunk, then silence
	done := make(chan error, 1)
	go func() {
		_, err := CopyAhead(&failAfter{limit: 10}, pr, nil, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err != io.ErrClosedPipe {
			t.Fatalf("CopyAhead: %v, want the failed write's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CopyAhead still waits for a silent source after a failed write")
	}
	if _, err := pw.Write([]byte{1}); err != io.ErrClosedPipe {
		t.Fatalf("the source is still open: %v", err)
	}
}
