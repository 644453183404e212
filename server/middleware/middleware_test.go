package middleware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// syncBuffer is a log sink that the server goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func testLogger() (*logrus.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	l := logrus.New()
	l.SetOutput(buf)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.DebugLevel)
	return l, buf
}

// get sends one request through h on a real loopback server and returns the
// response, body read.
func do(t *testing.T, h http.Handler, req func(url string) *http.Request) (*http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Do(req(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestLoggingOneLinePerRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		incoming  string
		keepsID   bool
		handler   http.HandlerFunc
		status    int
		bytes     float64
		level     string
		wantError string
	}{
		{
			name:     "sane incoming id is kept",
			incoming: "abc-123.X",
			keepsID:  true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				Log(r.Context()).Debug("inside")
				_, _ = io.WriteString(w, "hello")
			},
			status: 200, bytes: 5, level: "info",
		},
		{
			name:     "insane incoming id is replaced",
			incoming: "bad id\twith spaces",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			},
			status: 204, bytes: 0, level: "info",
		},
		{
			name: "no id is generated, error recorded, 5xx at error level",
			handler: func(w http.ResponseWriter, r *http.Request) {
				SetError(r.Context(), errors.New("disk on fire"))
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			status: 503, bytes: 0, level: "error", wantError: "disk on fire",
		},
		{
			name:    "handler that writes nothing is a 200",
			handler: func(w http.ResponseWriter, r *http.Request) {},
			status:  200, bytes: 0, level: "info",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, buf := testLogger()
			var seenID string
			h := Logging(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seenID = RequestID(r.Context())
				tc.handler(w, r)
			}))
			resp, _ := do(t, h, func(url string) *http.Request {
				req, _ := http.NewRequest(http.MethodGet, url+"/some/path", nil)
				if tc.incoming != "" {
					req.Header.Set(HeaderRequestID, tc.incoming)
				}
				return req
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			gotID := resp.Header.Get(HeaderRequestID)
			if gotID == "" || gotID != seenID {
				t.Fatalf("response id %q, handler saw %q", gotID, seenID)
			}
			if tc.keepsID && gotID != tc.incoming {
				t.Fatalf("id %q, want the incoming %q", gotID, tc.incoming)
			}
			if !tc.keepsID && gotID == tc.incoming {
				t.Fatalf("insane id %q kept", gotID)
			}
			var reqLines []map[string]any
			for _, l := range buf.lines(t) {
				if l["request_id"] != gotID {
					t.Fatalf("log line without the request id: %v", l)
				}
				if l["msg"] == "request" {
					reqLines = append(reqLines, l)
				}
			}
			if len(reqLines) != 1 {
				t.Fatalf("%d request lines, want 1: %v", len(reqLines), reqLines)
			}
			l := reqLines[0]
			if l["status"] != float64(tc.status) || l["bytes"] != tc.bytes || l["level"] != tc.level ||
				l["method"] != "GET" || l["path"] != "/some/path" || l["duration"] == nil {
				t.Fatalf("request line %v", l)
			}
			if got, _ := l["error"].(string); got != tc.wantError {
				t.Fatalf("error field %q, want %q", got, tc.wantError)
			}
		})
	}
}

func TestLogOutsideRequest(t *testing.T) {
	if Log(t.Context()) == nil {
		t.Fatal("Log returned nil outside a request")
	}
	if id := RequestID(t.Context()); id != "" {
		t.Fatalf("RequestID outside a request = %q", id)
	}
	SetError(t.Context(), errors.New("ignored")) // must not panic
}

func TestRecover(t *testing.T) {
	for _, tc := range []struct {
		name       string
		handler    http.HandlerFunc
		writeErr   ErrorWriter
		wantStatus int
		wantBody   string
	}{
		{
			name:    "panic before the response gets the envelope",
			handler: func(w http.ResponseWriter, r *http.Request) { panic("boom") },
			writeErr: func(w http.ResponseWriter, r *http.Request, err error) {
				w.WriteHeader(errdefs.HTTPStatus(err))
				_, _ = fmt.Fprintf(w, "envelope: %v", errors.Is(err, ErrPanic))
			},
			wantStatus: 500, wantBody: "envelope: true",
		},
		{
			name:       "no writer gives a bare 500",
			handler:    func(w http.ResponseWriter, r *http.Request) { panic(errors.New("boom")) },
			wantStatus: 500,
		},
		{
			name: "panic after the response started keeps the status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(w, "partial")
				panic("late")
			},
			writeErr: func(w http.ResponseWriter, r *http.Request, err error) {
				t.Error("error writer called after the response started")
			},
			wantStatus: 200, wantBody: "partial",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logger, buf := testLogger()
			h := Logging(logger, Recover(tc.writeErr, tc.handler))
			resp, body := do(t, h, func(url string) *http.Request {
				req, _ := http.NewRequest(http.MethodGet, url+"/p", nil)
				return req
			})
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			var panicLogged bool
			for _, l := range buf.lines(t) {
				if msg, _ := l["msg"].(string); strings.HasPrefix(msg, "panic serving GET /p") && l["stack"] != nil {
					panicLogged = true
				}
				if l["msg"] == "request" {
					if e, _ := l["error"].(string); !strings.Contains(e, "panic") {
						t.Fatalf("request line without the panic: %v", l)
					}
				}
			}
			if !panicLogged {
				t.Fatalf("panic not logged with its stack: %v", buf.lines(t))
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	for _, tc := range []struct {
		name          string
		body          string
		chunked       bool // no Content-Length: the limit is found while reading
		limit         int64
		wantTooLarge  bool
		wantEarlyFlag bool
	}{
		{name: "under", body: "12345", limit: 10},
		{name: "exactly at the limit", body: "1234567890", limit: 10},
		{name: "over by Content-Length", body: "12345678901", limit: 10, wantTooLarge: true, wantEarlyFlag: true},
		{name: "over while reading", body: "12345678901", chunked: true, limit: 10, wantTooLarge: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var readErr error
			var early bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b := LimitBody(w, r, tc.limit)
				early = b.Exceeded()
				got, readErr = io.ReadAll(r.Body)
				readErr = b.Cause(readErr)
				w.WriteHeader(errdefs.HTTPStatus(readErr))
			})
			resp, _ := do(t, h, func(url string) *http.Request {
				var body io.Reader = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // hides the length from net/http
				}
				req, _ := http.NewRequest(http.MethodPut, url, body)
				return req
			})
			if early != tc.wantEarlyFlag {
				t.Fatalf("Exceeded before reading = %v, want %v", early, tc.wantEarlyFlag)
			}
			if tc.wantTooLarge {
				if !errdefs.IsTooLarge(readErr) || resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("err %v status %d, want too large / 413", readErr, resp.StatusCode)
				}
				return
			}
			if readErr != nil || string(got) != tc.body {
				t.Fatalf("read %q, %v", got, readErr)
			}
		})
	}
}

func TestReadAll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		limit   int64
		wantErr bool
	}{
		{name: "fits", body: `{"a":1}`, limit: 7},
		{name: "too large", body: `{"a":12}`, limit: 7, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			data, err := ReadAll(w, r, tc.limit)
			if tc.wantErr {
				if !errdefs.IsTooLarge(err) {
					t.Fatalf("err %v, want too large", err)
				}
				return
			}
			if err != nil || string(data) != tc.body {
				t.Fatalf("got %q, %v", data, err)
			}
		})
	}
}

// TestRecorderKeepsReaderFrom checks that the logging wrapper hands an
// *os.File to net/http's ReadFrom (the sendfile path) instead of copying
// through Write.
func TestRecorderKeepsReaderFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blob")
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	if err := os.WriteFile(path, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	logger, buf := testLogger()
	var wasReaderFrom bool
	h := Logging(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, wasReaderFrom = w.(io.ReaderFrom)
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", fileModTime(t, f), f)
	}))
	resp, body := do(t, h, func(url string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		return req
	})
	if !wasReaderFrom {
		t.Fatal("the logging writer hides io.ReaderFrom")
	}
	if resp.StatusCode != 200 || !bytes.Equal(body, payload) {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	var counted bool
	for _, l := range buf.lines(t) {
		if l["msg"] == "request" && l["bytes"] == float64(len(payload)) {
			counted = true
		}
	}
	if !counted {
		t.Fatalf("bytes not counted through ReadFrom: %v", buf.lines(t))
	}
}

func fileModTime(t *testing.T, f *os.File) time.Time {
	t.Helper()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

func TestHeaderWritten(t *testing.T) {
	rec := &responseRecorder{ResponseWriter: httptest.NewRecorder()}
	wrapped := unwrapper{rec}
	if HeaderWritten(wrapped) {
		t.Fatal("written before anything was written")
	}
	wrapped.WriteHeader(http.StatusAccepted)
	if !HeaderWritten(wrapped) {
		t.Fatal("not written after WriteHeader")
	}
	if HeaderWritten(httptest.NewRecorder()) {
		t.Fatal("a writer without the recorder reports written")
	}
}

type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

func TestNewServer(t *testing.T) {
	logger, _ := testLogger()
	s := NewServer("127.0.0.1:0", http.NotFoundHandler(), WithErrorLogger(logger), WithWriteTimeout(DefaultWriteTimeout*2))
	if s.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.IdleTimeout != DefaultIdleTimeout ||
		s.ReadTimeout != DefaultReadTimeout || s.WriteTimeout != 2*DefaultWriteTimeout ||
		s.MaxHeaderBytes != DefaultMaxHeaderBytes || s.ErrorLog == nil || s.Addr != "127.0.0.1:0" {
		t.Fatalf("server settings %+v", s)
	}
}

func TestAddFields(t *testing.T) {
	logger, buf := testLogger()
	h := Logging(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		AddFields(r.Context(), logrus.Fields{"user": "alice"})
		AddFields(r.Context(), logrus.Fields{"digest": "sha256:abc", "status": "ignored"})
		w.WriteHeader(http.StatusCreated)
	}))
	do(t, h, func(url string) *http.Request {
		req, _ := http.NewRequest(http.MethodPut, url+"/x", nil)
		return req
	})
	lines := buf.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(lines), lines)
	}
	l := lines[0]
	// The response's own fields win over added ones.
	if l["user"] != "alice" || l["digest"] != "sha256:abc" || l["status"] != float64(201) {
		t.Fatalf("request line %v", l)
	}
	AddFields(t.Context(), logrus.Fields{"outside": true}) // must not panic
}
