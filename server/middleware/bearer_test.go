package middleware

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestBearerAuth(t *testing.T) {
	a := NewBearerAuth("a-token-of-some-length", "send a token")
	for _, tc := range []struct {
		name, header, want string
	}{
		{"right token", "Bearer a-token-of-some-length", ""},
		{"scheme in lower case", "bearer a-token-of-some-length", ""},
		{"no header", "", "send a token"},
		{"wrong token", "Bearer a-token-of-some-lengt", "invalid bearer token"},
		{"longer token", "Bearer a-token-of-some-length-and-more", "invalid bearer token"},
		{"basic", "Basic a-token-of-some-length", "want Bearer"},
		{"no scheme", "a-token-of-some-length", "want Bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			err := a.Check(r)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errdefs.IsUnauthenticated(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want Unauthenticated with %q", err, tc.want)
			}
		})
	}
}
