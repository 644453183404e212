package provider

import (
	"context"
	"net/http"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

func TestBearerToken(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	e := newTestEnv(t, &fakeBackend{
		jobs: func(context.Context) ([]api.Job, error) { return nil, nil },
	}, WithToken(token))
	for _, tc := range []struct {
		name   string
		path   string
		auth   string // "" sends no header
		status int
	}{
		{"no header", "/v1/jobs", "", 401},
		{"no header on healthz", "/healthz", "", 401},
		{"no header on metrics", "/metrics", "", 401},
		{"no header on an unknown path", "/v1/nothing", "", 401},
		{"wrong token", "/v1/jobs", "Bearer " + "f123456789abcdef0123456789abcdef", 401},
		{"a prefix of the token", "/v1/jobs", "Bearer " + token[:16], 401},
		{"the token and more", "/v1/jobs", "Bearer " + token + "0", 401},
		{"empty token", "/v1/jobs", "Bearer ", 401},
		{"basic scheme", "/v1/jobs", "Basic " + token, 401},
		{"token without scheme", "/v1/jobs", token, 401},
		{"right token", "/v1/jobs", "Bearer " + token, 200},
		{"scheme is case-insensitive", "/v1/jobs", "bearer " + token, 200},
		{"right token on healthz", "/healthz", "Bearer " + token, 200},
		{"right token on an unknown path", "/v1/nothing", "Bearer " + token, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.called())
			var opts []reqOpt
			if tc.auth != "" {
				opts = append(opts, withHeader("Authorization", tc.auth))
			}
			resp := e.do(t, http.MethodGet, tc.path, nil, opts...)
			if tc.status != 401 {
				resp.want(t, tc.status)
				if resp.Header.Get("WWW-Authenticate") != "" {
					t.Fatal("challenge on an authenticated request")
				}
				return
			}
			got := resp.wantError(t, http.StatusUnauthorized, "Unauthenticated")
			if ch := resp.Header.Get("WWW-Authenticate"); ch != `Bearer realm="providerd"` {
				t.Fatalf("challenge %q", ch)
			}
			if got.Message == "" {
				t.Fatal("no message")
			}
			if n := len(e.fake.called()); n != before {
				t.Fatalf("the backend was called without the token")
			}
		})
	}
}

func TestNoTokenNoCheck(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	e.do(t, http.MethodGet, "/v1/jobs", nil).want(t, http.StatusOK)
	e.do(t, http.MethodGet, "/v1/jobs", nil, withHeader("Authorization", "Bearer anything")).want(t, http.StatusOK)
}
