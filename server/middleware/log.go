package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// HeaderRequestID carries the request id, in the request when a proxy or
// client sets one, and always in the response.
const HeaderRequestID = "X-Request-Id"

// saneRequestID is what an incoming X-Request-Id must look like to be kept:
// short, and made of characters that cannot break a log line or a header.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:+/=-]{1,128}$`)

type ctxKey int

const (
	logKey ctxKey = iota
	recordKey
)

// record is what the request's log line reports besides the response.
// Handlers add to it through SetError; it is guarded because a handler may
// hand the context to goroutines.
type record struct {
	mu     sync.Mutex
	err    error
	fields logrus.Fields
}

// Log returns the logger of the request that ctx belongs to, with the
// request_id, method and path fields, for what a handler must log besides
// its request's line (AddFields enriches that line). Outside a request it returns an entry
// of the standard logger, so callers never get nil.
func Log(ctx context.Context) *logrus.Entry {
	if e, ok := ctx.Value(logKey).(*logrus.Entry); ok {
		return e
	}
	return logrus.NewEntry(logrus.StandardLogger())
}

// WithLog returns a copy of ctx that carries entry; Log(ctx) returns it.
func WithLog(ctx context.Context, entry *logrus.Entry) context.Context {
	return context.WithValue(ctx, logKey, entry)
}

// RequestID returns the id Logging gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	if v, ok := Log(ctx).Data["request_id"].(string); ok {
		return v
	}
	return ""
}

// SetError records err as the outcome of the request of ctx: the request's
// log line carries it in the error field. The adapter that writes a
// server's error envelope calls it, so an error is logged once, with its
// request. It does nothing outside a Logging request.
func SetError(ctx context.Context, err error) {
	if rec, ok := ctx.Value(recordKey).(*record); ok {
		rec.mu.Lock()
		rec.err = err
		rec.mu.Unlock()
	}
}

// AddFields adds fields to the request's log line, e.g. the user or the
// digest a push created, so that a request still logs one line. It does
// nothing outside a Logging request.
func AddFields(ctx context.Context, fields logrus.Fields) {
	if rec, ok := ctx.Value(recordKey).(*record); ok {
		rec.mu.Lock()
		if rec.fields == nil {
			rec.fields = logrus.Fields{}
		}
		for k, v := range fields {
			rec.fields[k] = v
		}
		rec.mu.Unlock()
	}
}

// Logging gives each request an id (the incoming X-Request-Id when it is
// sane, else a new random one, echoed in the response), puts a logger with
// request_id, method and path on the request's context, and logs one line
// when the request ends, with status, bytes and duration, the fields
// handlers added with AddFields, and the error recorded with SetError. 5xx responses log at error level, others
// at info level.
func Logging(logger *logrus.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !saneRequestID.MatchString(id) {
			id = newRequestID()
		}
		entry := logger.WithFields(logrus.Fields{
			"request_id": id,
			"method":     r.Method,
			"path":       r.URL.Path,
		})
		rec := &record{}
		ctx := context.WithValue(WithLog(r.Context(), entry), recordKey, rec)
		w.Header().Set(HeaderRequestID, id)

		rw := &responseRecorder{ResponseWriter: w}
		next.ServeHTTP(rw, r.WithContext(ctx))

		status := rw.status
		if status == 0 {
			// The handler wrote nothing: net/http answers 200.
			status = http.StatusOK
		}
		fields := logrus.Fields{}
		rec.mu.Lock()
		for k, v := range rec.fields {
			fields[k] = v
		}
		if rec.err != nil {
			fields["error"] = rec.err.Error()
		}
		rec.mu.Unlock()
		fields["status"] = status
		fields["bytes"] = rw.bytes
		fields["duration"] = time.Since(start).Round(time.Microsecond).String()
		line := entry.WithFields(fields)
		if status >= http.StatusInternalServerError {
			line.Error("request")
		} else {
			line.Info("request")
		}
	})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
