package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/publish"
)

// seededEnv is a server over a catalog seeded like `catalogd seed`, with
// small layers.
func seededEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	rep, err := publish.Seed(context.Background(), e.reg, publish.SeedOptions{BaseLayerSize: 2048, AppLayerSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 20 {
		t.Fatalf("seed published %d images, want 20", len(rep.Items))
	}
	return e
}

func findIDs(fr api.FindResponse) []string {
	out := []string{}
	for _, e := range fr.Images {
		out = append(out, e.Name+"@"+e.Version)
	}
	return out
}

func TestFind(t *testing.T) {
	e := seededEnv(t)
	apps := []string{"aspnet", "django", "dotnet35", "golang", "httpd", "iis", "mongodb", "mysql",
		"nginx", "node", "php", "python", "rails", "redis", "ruby", "sqlite"}

	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string // Name@Version, in order; nil: only check count
		count int
	}{
		{
			name:  "name with a wildcard, latest version",
			query: url.Values{"name": {"nano*"}},
			want:  []string{"NanoServer@10.0.14393.0"},
		},
		{
			name:  "name is case-insensitive",
			query: url.Values{"name": {"NANOSERVER"}, "allVersions": {"true"}},
			want:  []string{"NanoServer@10.0.10586.0", "NanoServer@10.0.14393.0"},
		},
		{
			name:  "minimumVersion",
			query: url.Values{"minimumVersion": {"10.0.14393.0"}},
			want:  []string{"NanoServer@10.0.14393.0", "WindowsServerCore@10.0.14393.0"},
		},
		{
			name:  "maximumVersion bound is inclusive",
			query: url.Values{"name": {"*server*"}, "maximumVersion": {"10.0.10586.0"}},
			want:  []string{"NanoServer@10.0.10586.0", "WindowsServerCore@10.0.10586.0"},
		},
		{
			name:  "allVersions",
			query: url.Values{"allVersions": {"true"}},
			count: 4 + len(apps),
		},
		{
			name:  "requiredVersion",
			query: url.Values{"name": {"WindowsServerCore"}, "requiredVersion": {"10.0.10586"}},
			want:  []string{"WindowsServerCore@10.0.10586.0"},
		},
		{
			name:  "no option: the latest of each name",
			query: url.Values{},
			count: 2 + len(apps),
		},
		{
			name:  "a wildcard that matches nothing is an empty list",
			query: url.Values{"name": {"zz*"}},
			want:  []string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/_find?"+tc.query.Encode(), nil).
				wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", "application/json")
			var fr api.FindResponse
			if err := json.Unmarshal(r.body, &fr); err != nil {
				t.Fatal(err)
			}
			got := findIDs(fr)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if tc.want == nil && len(got) != tc.count {
				t.Fatalf("got %d images %v, want %d", len(got), got, tc.count)
			}
		})
	}

	t.Run("entries carry the image metadata", func(t *testing.T) {
		var fr api.FindResponse
		r := e.do(http.MethodGet, "/v2/_find?name=microsoft/iis", nil).wantStatus(t, http.StatusOK)
		if err := json.Unmarshal(r.body, &fr); err != nil || len(fr.Images) != 1 {
			t.Fatalf("%s: %v", r.body, err)
		}
		iis := fr.Images[0]
		if iis.IsOSImage || iis.Parent == nil || iis.Parent.Name != "WindowsServerCore" || iis.Publisher != "CN=Microsoft" ||
			iis.Description == "" || iis.Size <= 0 || iis.Created.IsZero() || !strings.HasPrefix(iis.Digest, "sha256:") {
			t.Fatalf("iis entry %+v", iis)
		}
		// The digest is the manifest's: the OCI API serves it.
		e.do(http.MethodHead, "/v2/microsoft/iis/manifests/"+iis.Digest, nil).wantStatus(t, http.StatusOK)
	})

	for _, tc := range []struct {
		name    string
		query   url.Values
		status  int
		code    string
		message string // exact, when set
		id      string
	}{
		{
			name:   "requiredVersion that does not exist",
			query:  url.Values{"name": {"NanoServer"}, "requiredVersion": {"10.0.99999.0"}},
			status: http.StatusNotFound, code: CodeManifestUnknown, id: "NoMatchFoundForCriteria",
			message: "No match was found for the specified search criteria and package name 'NanoServer'. " +
				"Try Get-PackageSource to see all available registered package sources. RequiredVersion '10.0.99999.0' was not found.",
		},
		{
			name:   "a name that does not exist",
			query:  url.Values{"name": {"NoSuchImage"}},
			status: http.StatusNotFound, code: CodeNameUnknown, id: "NoMatchFoundForCriteria",
		},
		{
			name:   "requiredVersion with minimumVersion",
			query:  url.Values{"requiredVersion": {"10.0.14393.0"}, "minimumVersion": {"10.0.10586.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "VersionRangeAndRequiredVersionCannotBeSpecifiedTogether",
			message: "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command.",
		},
		{
			name:   "allVersions with requiredVersion",
			query:  url.Values{"requiredVersion": {"10.0.14393.0"}, "allVersions": {"true"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "AllVersionsCannotBeUsedWithOtherVersionParameters",
		},
		{
			name:   "minimum above maximum",
			query:  url.Values{"minimumVersion": {"2.0"}, "maximumVersion": {"1.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "MinimumVersionMustBeLessThanMaximumVersion",
		},
		{
			name:   "a version that does not parse",
			query:  url.Values{"minimumVersion": {"ten"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "InvalidVersion",
		},
		{
			name:   "allVersions that is not a boolean",
			query:  url.Values{"allVersions": {"maybe"}},
			status: http.StatusBadRequest, code: CodeFindInvalid,
		},
		{
			name:   "an unknown parameter",
			query:  url.Values{"requiredversion": {"1.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/_find?"+tc.query.Encode(), nil)
			ent := r.wantError(t, tc.status, tc.code)
			if tc.message != "" && ent.Message != tc.message {
				t.Fatalf("message %q,\nwant    %q", ent.Message, tc.message)
			}
			if tc.id != "" {
				var eb struct {
					Errors []struct {
						Detail findDetail `json:"detail"`
					} `json:"errors"`
				}
				if err := json.Unmarshal(r.body, &eb); err != nil || eb.Errors[0].Detail.ID != tc.id {
					t.Fatalf("detail of %s: %v, want id %s", r.body, err, tc.id)
				}
			}
		})
	}
}

func TestFindEmptyCatalog(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(http.MethodGet, "/v2/_find", nil).wantStatus(t, http.StatusOK)
	if string(r.body) != `{"images":[]}` {
		t.Fatalf("empty catalog: %s", r.body)
	}
	h := e.do(http.MethodHead, "/v2/_find", nil).wantStatus(t, http.StatusOK)
	if len(h.body) != 0 {
		t.Fatal("HEAD with a body")
	}
}
