package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// handlerFunc is an API v1 handler. It writes the response on success and
// returns an error otherwise, which writeError turns into the envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// envelope builds the v1 error body of err, for the request of requestID:
// the code is the name of err's class and the message err's text
// without it (api.NewError), a *provider.DependentsError fills the dependents, and a
// *provider.MatchesError the matches. An error of
// no class (a 500) gets a generic message with the request id instead,
// since its text may name server paths; the log line has the real one.
func envelope(err error, status int, requestID string) api.ErrorResponse {
	e := api.NewError(err)
	if status == http.StatusInternalServerError {
		e.Code = api.CodeInternal
		e.Message = fmt.Sprintf("internal server error (request id %s)", requestID)
	}
	var de *provider.DependentsError
	if errors.As(err, &de) {
		e.Dependents = append([]string(nil), de.Dependents...)
	}
	var me *provider.MatchesError
	if errors.As(err, &me) {
		e.Matches = append([]api.Image(nil), me.Matches...)
	}
	return api.ErrorResponse{Error: e}
}

// writeError is the one place where an error becomes a response, with the
// status of errdefs.HTTPStatus and the envelope of envelope. The error is
// recorded for the request's log line. When the response has already
// started (a stream), only the log remains.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	middleware.SetError(r.Context(), err)
	if middleware.HeaderWritten(w) {
		return
	}
	// A long call (a load, a save to a path) may have outlasted the
	// WriteTimeout that started with the request.
	extendWrite(w, r)
	status := errdefs.HTTPStatus(err)
	body, jerr := marshal(envelope(err, status, middleware.RequestID(r.Context())))
	if jerr != nil {
		// Strings and a slice of strings always encode.
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"Internal","message":"internal server error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshal encodes v as JSON followed by a newline, without escaping <, >
// and &: the messages are read by people and scripts, not embedded in
// HTML.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// adapt turns a method-to-handler table into an http.Handler whose errors
// go through writeError.
func (s *Server) adapt(byMethod map[string]handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := byMethod[r.Method]
		if !ok {
			// The router matches methods first; this is a table mismatch.
			s.writeError(w, r, fmt.Errorf("method %s on %s: %w", r.Method, r.URL.Path, errdefs.ErrNotImplemented))
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}
