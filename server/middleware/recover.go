package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
)

// ErrPanic is the error a recovered panic is reported with. It has no
// errdefs class, so it maps to 500.
var ErrPanic = errors.New("internal error")

// ErrorWriter writes err in a server's error envelope, with the status
// errdefs.HTTPStatus gives it.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// Recover runs next and turns a panic into a logged error and a 500
// response, written by writeErr in the server's envelope (a bare 500 when
// writeErr is nil). When the response has already started, the status can
// no longer change and only the log remains. http.ErrAbortHandler is passed
// on, since net/http uses it to abort a response on purpose.
func Recover(writeErr ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
				panic(v)
			}
			err := fmt.Errorf("panic serving %s %s: %v: %w", r.Method, r.URL.Path, v, ErrPanic)
			Log(r.Context()).WithField("stack", string(debug.Stack())).Error(err.Error())
			SetError(r.Context(), err)
			if HeaderWritten(w) {
				return
			}
			if writeErr == nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			writeErr(w, r, err)
		}()
		next.ServeHTTP(w, r)
	})
}
