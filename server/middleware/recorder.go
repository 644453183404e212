package middleware

import (
	"io"
	"net/http"
)

// responseRecorder notes the status and the number of body bytes of a
// response for the request's log line.
//
// It implements io.ReaderFrom by delegating to the wrapped writer, so that
// http.ServeContent on an *os.File still reaches net/http's sendfile path.
// Unwrap lets http.ResponseController reach the wrapped writer.
type responseRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseRecorder) WriteHeader(code int) {
	// 1xx responses are interim; the final status comes later.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom implements io.ReaderFrom.
func (w *responseRecorder) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		// writerOnly hides this method from io.Copy, which would
		// otherwise call it again.
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// Flush implements http.Flusher, for streamed responses.
func (w *responseRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type writerOnly struct{ io.Writer }

// HeaderWritten reports whether the response of w has started, so that an
// error adapter knows it can no longer write a status and an envelope. It
// looks through writers that have an Unwrap method for the writer Logging
// installed; without Logging it reports false.
func HeaderWritten(w http.ResponseWriter) bool {
	for range 16 { // wrappers nest a few levels at most
		if rw, ok := w.(*responseRecorder); ok {
			return rw.status != 0
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}
