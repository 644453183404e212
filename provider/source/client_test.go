package source

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  api.Source
		opts []Opt
		ok   bool
	}{
		{name: "http", src: api.Source{Name: "catalog", Location: "http://127.0.0.1:5000"}, ok: true},
		{name: "https with a path", src: api.Source{Name: "my.registry_1-a", Location: "https://registry.example/prefix/"}, ok: true},
		{name: "name of 64", src: api.Source{Name: strings.Repeat("a", 64), Location: "http://h"}, ok: true},
		{name: "empty name", src: api.Source{Location: "http://h"}},
		{name: "name of 65", src: api.Source{Name: strings.Repeat("a", 65), Location: "http://h"}},
		{name: "name with a slash", src: api.Source{Name: "a/b", Location: "http://h"}},
		{name: "name with a space", src: api.Source{Name: "a b", Location: "http://h"}},
		{name: "no location", src: api.Source{Name: "a"}},
		{name: "ftp", src: api.Source{Name: "a", Location: "ftp://h"}},
		{name: "no scheme", src: api.Source{Name: "a", Location: "127.0.0.1:5000"}},
		{name: "no host", src: api.Source{Name: "a", Location: "http:///v2"}},
		{name: "a query", src: api.Source{Name: "a", Location: "http://h/?x=1"}},
		{name: "an empty query", src: api.Source{Name: "a", Location: "http://h/?"}},
		{name: "a fragment", src: api.Source{Name: "a", Location: "http://h/#x"}},
		{name: "user info", src: api.Source{Name: "a", Location: "http://u:p@h/"}},
		{name: "insecure over a foreign transport", src: api.Source{Name: "a", Location: "https://h", Insecure: true},
			opts: []Opt{WithHTTPClient(&http.Client{Transport: roundTripper(nil)})}},
		{name: "insecure http needs no transport", src: api.Source{Name: "a", Location: "http://h", Insecure: true},
			opts: []Opt{WithHTTPClient(&http.Client{Transport: roundTripper(nil)})}, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.src, tc.opts...)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if c.Name() != tc.src.Name {
					t.Errorf("Name() = %q, want %q", c.Name(), tc.src.Name)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v, want InvalidArgument", err)
			}
		})
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPathPrefixAndUserAgent(t *testing.T) {
	env := newCatalogEnv(t)
	var agents []string
	mux := http.NewServeMux()
	mux.Handle("/prefix/", http.StripPrefix("/prefix", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents = append(agents, r.UserAgent())
		env.handler.ServeHTTP(w, r)
	})))
	srv := serve(t, mux)
	for _, tc := range []struct {
		name string
		opts []Opt
		want string
	}{
		{name: "default", want: DefaultUserAgent},
		{name: "set", opts: []Opt{WithUserAgent("providerd/1.0")}, want: "providerd/1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agents = nil
			c := newTestClient(t, srv.URL+"/prefix/", tc.opts...)
			if _, _, err := c.Manifest(context.Background(), "nanoserver", "latest"); err != nil {
				t.Fatal(err)
			}
			if len(agents) != 1 || agents[0] != tc.want {
				t.Errorf("user agents %q, want [%q]", agents, tc.want)
			}
		})
	}
}

func TestInsecure(t *testing.T) {
	env := newCatalogEnv(t)
	srv := httptest.NewTLSServer(env.handler)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name     string
		insecure bool
		opts     []Opt
		ok       bool
	}{
		{name: "certificate checked", insecure: false},
		{name: "insecure", insecure: true, ok: true},
		{name: "insecure over a given client", insecure: true, ok: true,
			opts: []Opt{WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClientOf(t, api.Source{Name: "tls", Location: srv.URL, Insecure: tc.insecure}, tc.opts...)
			_, _, err := c.Manifest(context.Background(), "nanoserver", "latest")
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errdefs.IsUnavailable(err) {
				t.Fatalf("error %v, want Unavailable (certificate not trusted)", err)
			}
		})
	}
	// The given client is not changed.
	given := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	newTestClientOf(t, api.Source{Name: "tls", Location: srv.URL, Insecure: true}, WithHTTPClient(given))
	if tr := given.Transport.(*http.Transport); tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("New changed the given client's transport")
	}
}
