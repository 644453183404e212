package middleware

import (
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// The timeouts of NewServer.
//
// ReadHeaderTimeout is short: a client that has not sent its headers after
// 10 s is slow-loris, not slow network. IdleTimeout bounds keep-alive
// connections that wait between requests.
//
// ReadTimeout and WriteTimeout cover a whole request, body included, and
// catalogd moves multi-GB blobs through one request: an hour carries 4 GiB
// at 1.2 MB/s. They are deliberately generous but finite, so a stalled
// connection does not live forever. Bigger or slower transfers are still
// possible, since the protocol resumes: uploads go in PATCH chunks and
// downloads continue with Range, each chunk a request of its own.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultReadTimeout       = time.Hour
	DefaultWriteTimeout      = time.Hour
	DefaultMaxHeaderBytes    = 1 << 20
)

// ServerOpt sets an option of NewServer.
type ServerOpt func(*http.Server)

// WithReadTimeout replaces DefaultReadTimeout.
func WithReadTimeout(d time.Duration) ServerOpt {
	return func(s *http.Server) { s.ReadTimeout = d }
}

// WithWriteTimeout replaces DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) ServerOpt {
	return func(s *http.Server) { s.WriteTimeout = d }
}

// WithErrorLogger sends net/http's own errors (TLS handshakes, bad
// requests that never reach a handler) to logger at warning level.
func WithErrorLogger(logger *logrus.Logger) ServerOpt {
	return func(s *http.Server) { s.ErrorLog = log.New(logWriter{logger: logger}, "", 0) }
}

// NewServer returns an http.Server for handler on addr with the timeouts
// above. The caller starts it (ListenAndServe, Serve, ServeTLS) and shuts
// it down.
func NewServer(addr string, handler http.Handler, opts ...ServerOpt) *http.Server {
	s := &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// logWriter writes each line of the standard log package to logrus.
type logWriter struct{ logger *logrus.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.logger.WithField("component", "http").Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}
