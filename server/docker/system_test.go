package docker

import (
	"context"
	"net/http"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

func TestPing(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	for _, tc := range []struct{ name, method, path, body string }{
		{"GET unversioned", http.MethodGet, "/_ping", "OK"},
		{"HEAD unversioned", http.MethodHead, "/_ping", ""},
		{"GET versioned", http.MethodGet, "/v1.51/_ping", "OK"},
		{"HEAD versioned", http.MethodHead, "/v1.50/_ping", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.method, tc.path)
			if r.status != http.StatusOK || string(r.body) != tc.body {
				t.Fatalf("status %d body %q", r.status, r.body)
			}
			for k, v := range map[string]string{"Api-Version": "1.51", "Ostype": "windows", "Docker-Experimental": "false", "Swarm": "inactive"} {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestAPIVersionBounds(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	e.do(t, http.MethodGet, "/v1.52/version").wantError(t, http.StatusBadRequest, "client version 1.52 is too new. Maximum supported API version is 1.51")
	e.do(t, http.MethodGet, "/v1.12/version").wantError(t, http.StatusBadRequest, "client version 1.12 is too old")
}

func TestVersion(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	var v systemVersion
	e.do(t, http.MethodGet, "/v1.50/version").decode(t, &v)
	if v.APIVersion != "1.51" || v.MinAPIVersion != "1.24" || v.Version != "1.2.3" || v.Os != "windows" || v.Platform.Name != "providerd" {
		t.Fatalf("version %+v", v)
	}
	if len(v.Components) != 1 || v.Components[0].Name != "Engine" || v.Components[0].Details["ApiVersion"] != "1.51" {
		t.Fatalf("components %+v", v.Components)
	}
}

func TestInfo(t *testing.T) {
	f := withImages(&fakeBackend{}, sampleImages())
	f.containersFn = func(context.Context) ([]api.Container, error) {
		return []api.Container{{ID: "1", Name: "c1", State: api.ContainerRunning}, {ID: "2", Name: "c2", State: api.ContainerCreated}}, nil
	}
	e := newTestEnv(t, f)
	var in systemInfo
	e.do(t, http.MethodGet, "/info").decode(t, &in)
	if in.Images != 3 || in.Containers != 2 || in.ContainersRunning != 1 || in.ContainersStopped != 1 ||
		in.OSType != "windows" || in.DockerRootDir != "/var/lib/providerd" || in.ServerVersion != "1.2.3" {
		t.Fatalf("info %+v", in)
	}
}

func TestToken(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{}, WithToken("0123456789abcdef"))
	e.do(t, http.MethodGet, "/_ping").wantError(t, http.StatusUnauthorized, "needs a bearer token")
	e.do(t, http.MethodGet, "/_ping", "Authorization", "Basic eDp5").wantError(t, http.StatusUnauthorized, "want Bearer")
	e.do(t, http.MethodGet, "/_ping", "Authorization", "Bearer wrong").wantError(t, http.StatusUnauthorized, "invalid bearer token")
	if r := e.do(t, http.MethodGet, "/_ping", "Authorization", "Bearer 0123456789abcdef"); r.status != http.StatusOK {
		t.Fatalf("status %d with the token", r.status)
	}
}
