package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
)

func TestOCICode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("repository x: %w", err) }
	for _, tc := range []struct {
		name   string
		err    error
		code   string
		status int
	}{
		{"blob unknown", wrap(catalog.ErrBlobUnknown), CodeBlobUnknown, 404},
		{"blob upload invalid", wrap(catalog.ErrBlobUploadInvalid), CodeBlobUploadInvalid, 400},
		{"blob upload unknown", wrap(catalog.ErrBlobUploadUnknown), CodeBlobUploadUnknown, 404},
		{"digest invalid", wrap(catalog.ErrDigestInvalid), CodeDigestInvalid, 400},
		{"digest mismatch", wrap(catalog.ErrDigestMismatch), CodeDigestInvalid, 400},
		{"manifest blob unknown", wrap(catalog.ErrManifestBlobUnknown), CodeManifestBlobUnknown, 400},
		{"manifest invalid", wrap(catalog.ErrManifestInvalid), CodeManifestInvalid, 400},
		{"manifest too large", wrap(catalog.ErrManifestTooLarge), CodeSizeInvalid, 413},
		{"manifest unknown", wrap(catalog.ErrManifestUnknown), CodeManifestUnknown, 404},
		{"name invalid", wrap(catalog.ErrNameInvalid), CodeNameInvalid, 400},
		{"name unknown", wrap(catalog.ErrNameUnknown), CodeNameUnknown, 404},
		{"size invalid", wrap(catalog.ErrSizeInvalid), CodeSizeInvalid, 400},
		{"tag invalid", wrap(catalog.ErrTagInvalid), CodeTagInvalid, 400},
		{"range invalid", wrap(catalog.ErrRangeInvalid), CodeRangeInvalid, 416},
		{"unsupported", wrap(catalog.ErrUnsupported), CodeUnsupported, 501},
		{"explicit code wins", withCode(CodeFindInvalid, nil, wrap(catalog.ErrNameInvalid)), CodeFindInvalid, 400},
		{"class: unauthenticated", wrap(errdefs.ErrUnauthenticated), CodeUnauthorized, 401},
		{"class: permission denied", wrap(errdefs.ErrPermissionDenied), CodeDenied, 403},
		{"class: too large", wrap(errdefs.ErrTooLarge), CodeSizeInvalid, 413},
		{"class: out of range", wrap(errdefs.ErrOutOfRange), CodeRangeInvalid, 416},
		{"class: failed precondition", wrap(errdefs.ErrFailedPrecondition), CodeDigestInvalid, 400},
		{"class: invalid argument", wrap(errdefs.ErrInvalidArgument), CodeInvalidArgument, 400},
		{"class: not found", wrap(errdefs.ErrNotFound), CodeNotFound, 404},
		{"class: conflict", wrap(errdefs.ErrConflict), CodeConflict, 409},
		{"class: unavailable", wrap(errdefs.ErrUnavailable), CodeUnavailable, 503},
		{"deadline", wrap(context.DeadlineExceeded), CodeUnavailable, 503},
		{"too many failed authentications", wrap(errdefs.ErrTooManyRequests), CodeTooManyRequests, 429},
		{"busy verifying credentials", wrap(errVerifyBusy), CodeUnavailable, 503},
		{"unclassified", errors.New("boom"), CodeUnknown, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _ := ociCode(tc.err); code != tc.code {
				t.Fatalf("code %s, want %s", code, tc.code)
			}
			if st := errdefs.HTTPStatus(tc.err); st != tc.status {
				t.Fatalf("status %d, want %d", st, tc.status)
			}
		})
	}
}

// TestFindErrorKeepsOneGetText checks that the code wrapper does not
// change the OneGet message.
func TestFindErrorKeepsOneGetText(t *testing.T) {
	_, err := find.Filter(nil, find.Options{RequiredVersion: "1.0", MaximumVersion: "2.0"})
	coded := findError(err, nil)
	if coded.Error() != err.Error() || !errdefs.IsInvalidArgument(coded) {
		t.Fatalf("coded error %q (%v), want %q", coded, errdefs.HTTPStatus(coded), err)
	}
}

// TestPanicBecomes500 serves a registry without a database, whose first
// transaction panics: the client gets a 500 envelope that names no
// internals, and the server goes on.
func TestPanicBecomes500(t *testing.T) {
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(&catalog.Registry{}, WithLogger(logger), WithInsecureDev(true))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	e := &testEnv{t: t, srv: srv}
	ent := e.do(http.MethodGet, "/v2/_catalog", nil).wantError(t, http.StatusInternalServerError, CodeUnknown)
	if !strings.HasPrefix(ent.Message, "internal server error (request id ") {
		t.Fatalf("500 message %q", ent.Message)
	}
	e.do(http.MethodGet, "/v2/", nil).wantStatus(t, http.StatusOK)
}
