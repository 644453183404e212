package content

import (
	"io"
	"sync"
)

// aheadDepth is how many buffers a copy uses: one being written, the rest
// being read ahead.
const aheadDepth = 4

// aheadPool holds the buffers of CopyAhead.
var aheadPool = sync.Pool{New: func() any { b := AlignedBuffer(copyBufferSize); return &b }}

// CopyAhead copies src to dst in full chunks of 1 MiB, from aligned
// buffers. A goroutine reads up to three chunks ahead of the writes; with h,
// each chunk is also written to h on another goroutine while it is written
// to dst. A copy then costs the slowest of the read, the hash and the write
// rather than their sum: a save, or an install from a file that is not in
// the page cache, waits on the disk once per chunk, not twice, and a push
// keeps reading the network while the disk writes.
//
// offset is where dst stands: the first chunk is cut short so that every
// later one lands at a multiple of DirectIOAlign, where a Writer of this
// store writes it straight to disk.
//
// It returns the bytes written to dst and the first error, io.EOF excepted.
// The reading goroutine has stopped when it returns: after a failed write,
// CopyAhead closes src if it is an io.Closer, so that a read in progress
// (from a network connection) ends, and waits for it.
func CopyAhead(dst io.Writer, src io.Reader, h io.Writer, offset int64) (int64, error) {
	type chunk struct {
		buf *[]byte
		n   int
		err error
	}
	free := make(chan *[]byte, aheadDepth)
	for range aheadDepth {
		free <- aheadPool.Get().(*[]byte)
	}
	full := make(chan chunk, aheadDepth) // never blocks: there are only aheadDepth buffers
	stop := make(chan struct{})
	read := make(chan struct{})
	head := int(offset % DirectIOAlign)
	go func() {
		defer close(read)
		for {
			var buf *[]byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			b := *buf
			if head != 0 {
				b, head = b[:len(b)-head], 0
			}
			n, err := fill(src, b)
			full <- chunk{buf: buf, n: n, err: err}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	defer func() {
		close(stop)
		if c, ok := src.(io.Closer); ok && failed {
			c.Close()
		}
		<-read
		for range aheadDepth {
			select {
			case b := <-free:
				aheadPool.Put(b)
			case c := <-full:
				aheadPool.Put(c.buf)
			}
		}
	}()

	var total int64
	hashed := make(chan struct{})
	for {
		c := <-full
		if c.n > 0 {
			p := (*c.buf)[:c.n]
			if h != nil {
				go func() {
					h.Write(p) // a hash.Hash never fails
					hashed <- struct{}{}
				}()
			}
			w, werr := dst.Write(p)
			if h != nil {
				<-hashed
			}
			total += int64(w)
			if werr == nil && w < c.n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				free <- c.buf
				failed = true
				return total, werr
			}
		}
		free <- c.buf
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, c.err
		}
	}
}

// fill reads from r until b is full or r fails; io.EOF, unlike with
// io.ReadFull, stays io.EOF whatever was read, and a reader's own
// io.ErrUnexpectedEOF stays an error.
func fill(r io.Reader, b []byte) (int, error) {
	n, empty := 0, 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty == 100 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}
