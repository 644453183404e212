package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestErrorMapping(t *testing.T) {
	envelope := `{"errors":[{"code":"SOME_CODE","message":"the registry's words","detail":{"x":1}}]}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		class  error
	}{
		{name: "400", status: http.StatusBadRequest, body: envelope, class: errdefs.ErrInvalidArgument},
		{name: "401 without a challenge", status: http.StatusUnauthorized, body: envelope, class: errdefs.ErrUnauthenticated},
		{name: "403", status: http.StatusForbidden, body: envelope, class: errdefs.ErrPermissionDenied},
		{name: "404", status: http.StatusNotFound, body: envelope, class: errdefs.ErrNotFound},
		{name: "405", status: http.StatusMethodNotAllowed, body: envelope, class: errdefs.ErrInvalidArgument},
		{name: "408", status: http.StatusRequestTimeout, body: envelope, class: errdefs.ErrUnavailable},
		{name: "409", status: http.StatusConflict, body: envelope, class: errdefs.ErrInvalidArgument},
		{name: "416", status: http.StatusRequestedRangeNotSatisfiable, body: envelope, class: errdefs.ErrOutOfRange},
		{name: "429", status: http.StatusTooManyRequests, body: envelope, class: errdefs.ErrUnavailable},
		{name: "500", status: http.StatusInternalServerError, body: envelope, class: errdefs.ErrUnavailable},
		{name: "502", status: http.StatusBadGateway, body: envelope, class: errdefs.ErrUnavailable},
		{name: "503", status: http.StatusServiceUnavailable, body: envelope, class: errdefs.ErrUnavailable},
		{name: "304, unexpected", status: http.StatusNotModified, class: errdefs.ErrUnavailable},
		{name: "202, unexpected", status: http.StatusAccepted, body: envelope, class: errdefs.ErrUnavailable},
		{name: "404 with a text body", status: http.StatusNotFound, body: "404 page not found\n", class: errdefs.ErrNotFound},
		{name: "404 with an envelope beyond 64 KiB", status: http.StatusNotFound,
			body: `{"errors":[{"code":"X","message":"` + strings.Repeat("m", 70<<10) + `"}]}`, class: errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			c := newTestClient(t, serve(t, h).URL)
			_, _, err := c.Manifest(context.Background(), "microsoft/iis", "1.0.0.0")
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tc.status {
				t.Fatalf("error %v: no *StatusError of status %d", err, tc.status)
			}
			want := []string{"source catalog", "repository microsoft/iis", "manifest 1.0.0.0", fmt.Sprintf("HTTP %d", tc.status)}
			if tc.body == envelope {
				want = append(want, "SOME_CODE", "the registry's words")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if se.Code == "X" {
				t.Error("an envelope beyond 64 KiB was read")
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	srv := serve(t, http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newTestClient(t, url)
	_, _, err := c.Manifest(context.Background(), "nanoserver", "latest")
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "manifest latest") {
		t.Errorf("connection refused: error %v, want Unavailable naming the manifest", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Blob(ctx, "nanoserver", digestOf(t, "sha256:"+strings.Repeat("a", 64)), 0)
	if !errors.Is(err, context.Canceled) || errdefs.IsUnavailable(err) {
		t.Errorf("canceled context: error %v, want context.Canceled only", err)
	}
}
