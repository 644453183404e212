package middleware

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// LimitedBody is a request body capped at a number of bytes. Reading past
// the cap fails with an error of class errdefs.ErrTooLarge, and net/http
// closes the connection after the response, as with http.MaxBytesReader,
// which it wraps.
type LimitedBody struct {
	rc       io.ReadCloser
	limit    int64
	exceeded atomic.Bool
}

// LimitBody replaces r.Body with a LimitedBody of limit bytes and returns
// it. A request whose Content-Length is already over the limit is marked
// exceeded at once, so a handler can refuse it before any store call:
//
//	body := middleware.LimitBody(w, r, max)
//	if body.Exceeded() {
//		return body.Err()
//	}
func LimitBody(w http.ResponseWriter, r *http.Request, limit int64) *LimitedBody {
	b := &LimitedBody{rc: http.MaxBytesReader(w, r.Body, limit), limit: limit}
	if r.ContentLength > limit {
		b.exceeded.Store(true)
	}
	r.Body = b
	return b
}

// Read implements io.Reader.
func (b *LimitedBody) Read(p []byte) (int, error) {
	if b.exceeded.Load() {
		return 0, b.Err()
	}
	n, err := b.rc.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.exceeded.Store(true)
		err = b.Err()
	}
	return n, err
}

// Close implements io.Closer.
func (b *LimitedBody) Close() error { return b.rc.Close() }

// Exceeded reports whether the body is over the limit.
func (b *LimitedBody) Exceeded() bool { return b.exceeded.Load() }

// Err is the error of a body over the limit, of class errdefs.ErrTooLarge.
func (b *LimitedBody) Err() error {
	return fmt.Errorf("request body larger than the limit of %d bytes: %w", b.limit, errdefs.ErrTooLarge)
}

// Cause returns Err when the body went over the limit, else err. A handler
// passes the error of the call that consumed the body through it, so the
// client gets 413 whatever that call wrapped the read error in.
func (b *LimitedBody) Cause(err error) error {
	if err != nil && b.Exceeded() {
		return b.Err()
	}
	return err
}

// ReadAll reads the whole body of r, at most limit bytes; a longer body
// gives an error of class errdefs.ErrTooLarge.
func ReadAll(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := LimitBody(w, r, limit)
	if body.Exceeded() {
		return nil, body.Err()
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, body.Cause(fmt.Errorf("reading request body: %w", err))
	}
	return data, nil
}
