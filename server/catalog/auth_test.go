package catalog

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestAuth(t *testing.T) {
	e := newTestEnv(t)
	blob := []byte("pushed with credentials")
	d := digest.FromBytes(blob)
	push := "/v2/repo/blobs/uploads/?digest=" + d.String()

	for _, tc := range []struct {
		name string
		opts []reqOpt
	}{
		{"no credentials", nil},
		{"wrong password", []reqOpt{withBasic(testUser, "wrong")}},
		{"unknown user", []reqOpt{withBasic("nobody", testPassword)}},
		{"empty user", []reqOpt{withBasic("", testPassword)}},
		{"bearer instead of basic", []reqOpt{withHeader("Authorization", "Bearer abc")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(http.MethodPost, push, bytes.NewReader(blob), tc.opts...).
				wantHeader(t, "WWW-Authenticate", `Basic realm="catalogd"`).
				wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
				e.do(m, "/v2/repo/manifests/x", strings.NewReader("{}"), tc.opts...).
					wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			}
		})
	}
	if e.hasBlob("repo", d) {
		t.Fatal("an unauthenticated push stored a blob")
	}

	// Reads are anonymous, and the right credentials push.
	e.do(http.MethodGet, "/v2/_catalog", nil).wantStatus(t, http.StatusOK)
	e.do(http.MethodPost, push, bytes.NewReader(blob), withAuth()).wantStatus(t, http.StatusCreated)
	e.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil).wantStatus(t, http.StatusOK)
}

func TestReadOnly(t *testing.T) {
	e := newTestEnv(t, WithReadOnly(true))
	blob := []byte("never stored")
	d := digest.FromBytes(blob)
	for _, tc := range []struct {
		name string
		opts []reqOpt
	}{
		{"with valid credentials", []reqOpt{withAuth()}},
		{"without credentials", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := e.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob), tc.opts...).
				wantError(t, http.StatusForbidden, CodeDenied).Message
			if !strings.Contains(msg, "read-only mode") {
				t.Fatalf("message %q does not say read-only mode", msg)
			}
			e.do(http.MethodDelete, "/v2/repo/manifests/latest", nil, tc.opts...).wantError(t, http.StatusForbidden, CodeDenied)
		})
	}
	e.do(http.MethodGet, "/v2/", nil).wantStatus(t, http.StatusOK)
	if e.hasBlob("repo", d) {
		t.Fatal("a read-only server stored a blob")
	}
}

func TestInsecureDev(t *testing.T) {
	e := newTestEnv(t, WithInsecureDev(true))
	blob := []byte("anyone may push in dev mode")
	d := digest.FromBytes(blob)
	e.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob)).wantStatus(t, http.StatusCreated)
}

func TestNewNeedsCredentials(t *testing.T) {
	e := newTestEnv(t)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	if _, err := New(e.reg, WithLogger(logger)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New without credentials: %v, want invalid argument", err)
	}
	if _, err := New(nil, WithInsecureDev(true)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New without a registry: %v", err)
	}
	for _, opt := range []Opt{WithInsecureDev(true), WithReadOnly(true), WithHtpasswd(testHtpasswd(t))} {
		if _, err := New(e.reg, WithLogger(logger), opt); err != nil {
			t.Fatal(err)
		}
	}
}
