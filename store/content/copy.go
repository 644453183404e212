package content

import (
	"io"
	"sync"
	"sync/atomic"
)

// aheadDepth is how many buffers a copy uses: one being written, one being
// hashed, the rest being read ahead.
const aheadDepth = 4

// aheadChunk is the size of the chunks of CopyAhead. Each chunk costs a
// write, a hash and a handoff between goroutines; on a virtual machine the
// handoffs (a thread woken, a context switch) are much of a download's
// system time, and 2 MiB chunks halve them against 1 MiB, for 8 MiB of
// buffers per copy.
const aheadChunk = 2 << 20

// aheadPool holds the buffers of CopyAhead.
var aheadPool = sync.Pool{New: func() any { b := AlignedBuffer(aheadChunk); return &b }}

// CopyAhead copies src to dst in full chunks of aheadChunk (2 MiB), from
// aligned buffers. A goroutine reads up to aheadDepth chunks ahead of the writes.
// Each chunk is also hashed, in order, on a goroutine of its own, while
// dst writes the chunks: into h when h is not nil, and into dst's own
// digester when dst is a ChunkWriter (which then writes without hashing).
// The hash may run ahead of the writes, or behind them, by up to the
// chunks read ahead. A copy then costs the slowest of the read, the hash
// and the write rather than their sum: a download keeps the disk writing
// back to back while the hash and the network work, a save, or an install
// from a file that is not in the page cache, waits on the disk once per
// chunk, not twice, and a push keeps reading the network while the disk
// writes.
//
// offset is where dst stands: the first chunk is cut short so that every
// later one lands at a multiple of DirectIOAlign, where a Writer of this
// store writes it straight to disk.
//
// It returns the bytes written to dst and the first error, io.EOF excepted.
// Its goroutines have stopped when it returns, every chunk written hashed
// too: after a failed write, CopyAhead closes src if it is an io.Closer, so
// that a read in progress (from a network connection) ends, and waits for
// it; the chunks read but not written are then not hashed.
func CopyAhead(dst io.Writer, src io.Reader, h io.Writer, offset int64) (int64, error) {
	cw, _ := dst.(ChunkWriter)
	hashing := h != nil || cw != nil
	// A chunk is released by each of its consumers, the write and, when
	// there is one, the hash; the last one frees its buffer.
	type chunk struct {
		buf  *[]byte
		n    int
		err  error
		refs atomic.Int32
	}
	free := make(chan *[]byte, aheadDepth)
	for range aheadDepth {
		free <- aheadPool.Get().(*[]byte)
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c.buf // never blocks: there are only aheadDepth buffers
		}
	}
	// Neither channel blocks a send: there are only aheadDepth buffers.
	toWrite := make(chan *chunk, aheadDepth)
	toHash := make(chan *chunk, aheadDepth)
	stop := make(chan struct{})
	var stopped atomic.Bool
	read := make(chan struct{})
	head := int(offset % DirectIOAlign)
	go func() {
		defer close(read)
		defer close(toHash)
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
			c := &chunk{buf: buf, n: n, err: err}
			c.refs.Store(1)
			if hashing {
				c.refs.Store(2)
				toHash <- c
			}
			toWrite <- c
			if err != nil {
				return
			}
		}
	}()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for c := range toHash {
			if c.n > 0 && !stopped.Load() {
				p := (*c.buf)[:c.n]
				if cw != nil {
					cw.HashChunk(p)
				}
				if h != nil {
					h.Write(p) // a hash.Hash never fails
				}
			}
			release(c)
		}
	}()
	failed := false
	defer func() {
		if failed {
			stopped.Store(true)
		}
		close(stop)
		if c, ok := src.(io.Closer); ok && failed {
			c.Close()
		}
		<-read
		<-hashed
		for len(toWrite) > 0 {
			release(<-toWrite)
		}
		for range aheadDepth {
			aheadPool.Put(<-free)
		}
	}()

	var total int64
	for {
		c := <-toWrite
		if c.n > 0 {
			p := (*c.buf)[:c.n]
			var w int
			var werr error
			if cw != nil {
				w, werr = cw.WriteChunk(p)
			} else {
				w, werr = dst.Write(p)
			}
			total += int64(w)
			if werr == nil && w < c.n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				release(c)
				failed = true
				return total, werr
			}
		}
		release(c)
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
