package provider

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/containerprovider/containerprovider/api"
)

// metricsContentType is the Prometheus text exposition format.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// health answers GET /healthz: 200 api.Health. The server answers when it
// can serve requests; it does not probe the sources.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: s.opts.version})
}

// metrics answers GET /metrics with the Prometheus text exposition of the
// backend. It is written to memory first, so that a failure still gets the
// envelope rather than half a page.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := s.backend.WriteMetrics(&buf); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", metricsContentType)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}
