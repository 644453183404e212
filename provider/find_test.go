package provider

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// downSource is a source whose every call fails as an unreachable
// registry's would.
type downSource struct{ name string }

func (s downSource) Name() string { return s.name }
func (s downSource) Sync(ctx context.Context, m *mirror.Mirror) error {
	err := errors.New("dial tcp 127.0.0.1:1: connection refused: unavailable")
	st, _, serr := m.State(ctx)
	if serr != nil {
		return serr
	}
	st.LastError = err.Error()
	if serr := m.SetState(ctx, st); serr != nil {
		return serr
	}
	return err
}
func (s downSource) Lookup(ctx context.Context, m *mirror.Mirror, _ string) error {
	return s.Sync(ctx, m)
}
func (s downSource) Manifest(context.Context, string, string) (ocispec.Descriptor, []byte, error) {
	return ocispec.Descriptor{}, nil, errdefs.ErrUnavailable
}
func (s downSource) Blob(context.Context, string, digest.Digest, int64) (io.ReadCloser, error) {
	return nil, errdefs.ErrUnavailable
}

// withDownSources makes the sources whose name starts with "down" fail.
func withDownSources(p *Provider) {
	real := p.newSource
	p.newSource = func(s api.Source) (Source, error) {
		if strings.HasPrefix(s.Name, "down") {
			return downSource{s.Name}, nil
		}
		return real(s)
	}
}

func entryIDs(entries []api.FindEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name+" "+e.Version+" @"+e.Source)
	}
	return out
}

func TestFindAcrossSources(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withDownSources)
	ctx := context.Background()
	second := newCatalog(t, testBaseLayerSize)
	if _, err := e.p.AddSource(ctx, second.source("mirror")); err != nil {
		t.Fatal(err)
	}

	got, err := findImages(ctx, e.p, FindOptions{Name: "NanoServer"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"NanoServer 10.0.14393.0 @catalog", "NanoServer 10.0.14393.0 @mirror"}
	if !slices.Equal(entryIDs(got), want) {
		t.Errorf("Find NanoServer: %q, want %q", entryIDs(got), want)
	}
	got, err = findImages(ctx, e.p, FindOptions{Name: "nano*", Source: "mirror", VersionOptions: api.VersionOptions{AllVersions: true}})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"NanoServer 10.0.10586.0 @mirror", "NanoServer 10.0.14393.0 @mirror"}
	if !slices.Equal(entryIDs(got), want) {
		t.Errorf("Find in mirror: %q, want %q", entryIDs(got), want)
	}
	all, err := findImages(ctx, e.p, FindOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2*18 {
		t.Errorf("Find: %d entries, want the latest of 18 names in 2 sources", len(all))
	}

	// The same image in two sources installs once, from the first.
	jb := e.install(api.InstallRequest{Name: "NanoServer"})
	if jb.State != api.JobSucceeded || jb.Result.Source != "catalog" {
		t.Errorf("install from two sources: %s %+v", jb.State, jb.Result)
	}

	// A source that does not answer is skipped.
	if _, err := e.p.AddSource(ctx, api.Source{Name: "down1", Location: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.p.Find(ctx, FindOptions{Name: "WindowsServerCore"})
	if err != nil || len(res.Images) != 2 {
		t.Errorf("Find with a source down: %q, %v", entryIDs(res.Images), err)
	}
	// ... and the answer says so.
	if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "source down1 was skipped: its index cannot be read: ") {
		t.Errorf("warnings %q, want one naming down1", res.Warnings)
	}
	// Nothing found is not the last word then.
	_, err = findImages(ctx, e.p, FindOptions{Name: "BigImage"})
	mustClass(t, err, errdefs.ErrNotFound)
	if msg := err.Error(); !strings.HasPrefix(msg, "No match was found for the specified search criteria and package name 'BigImage'. The answer may be incomplete: source down1 was skipped") {
		t.Errorf("error %q", msg)
	}
	if api.NewError(err).ID != find.IDNoMatchFoundForCriteria {
		t.Errorf("error %q lost its id", err)
	}
	_, err = findImages(ctx, e.p, FindOptions{Source: "down1"})
	mustClass(t, err, errdefs.ErrUnavailable)
	if !strings.Contains(err.Error(), "down1") {
		t.Errorf("error %q does not name the source", err)
	}
}

func TestFindErrors(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withDownSources)
	ctx := context.Background()
	tests := []struct {
		name string
		opts FindOptions
		want error
		text string
	}{
		{name: "unknown source", opts: FindOptions{Source: "nowhere"}, want: errdefs.ErrNotFound},
		{name: "no match", opts: FindOptions{Name: "Nothing"}, want: errdefs.ErrNotFound,
			text: "No match was found for the specified search criteria and package name 'Nothing'."},
		{name: "min above max", opts: FindOptions{VersionOptions: api.VersionOptions{MinimumVersion: "2.0", MaximumVersion: "1.0"}},
			want: errdefs.ErrInvalidArgument, text: "The specified MinimumVersion '2.0' is greater than the specified MaximumVersion '1.0'"},
		{name: "all and required", opts: FindOptions{VersionOptions: api.VersionOptions{AllVersions: true, RequiredVersion: "1.0"}},
			want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := findImages(ctx, e.p, tt.opts)
			mustClass(t, err, tt.want)
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q, want %q", err, tt.text)
			}
		})
	}
	got, err := findImages(ctx, e.p, FindOptions{Name: "nothing*"})
	if err != nil || len(got) != 0 || got == nil {
		t.Errorf("a wildcard matching nothing: %v, %v; want an empty list", got, err)
	}

	// Every source down: Unavailable, naming them.
	if err := e.p.RemoveSource(ctx, "catalog"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"down1", "down2"} {
		if _, err := e.p.AddSource(ctx, api.Source{Name: name, Location: "http://127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = findImages(ctx, e.p, FindOptions{})
	mustClass(t, err, errdefs.ErrUnavailable)
	for _, name := range []string{"down1", "down2"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestSources(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	list, err := e.p.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "catalog" || list[0].Location != e.cat.srv.URL {
		t.Fatalf("default sources: %+v", list)
	}

	added, err := e.p.AddSource(ctx, api.Source{Name: "private", Location: "https://registry.example", Username: "u", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if added.Password != "" || added.Username != "u" {
		t.Errorf("AddSource returned %+v", added)
	}
	list, _ = e.p.Sources(ctx)
	if len(list) != 2 || list[1].Name != "private" || list[1].Password != "" {
		t.Errorf("Sources: %+v", list)
	}
	tests := []struct {
		name string
		s    api.Source
		want error
	}{
		{name: "taken", s: api.Source{Name: "private", Location: "http://127.0.0.1:5000"}, want: errdefs.ErrAlreadyExists},
		{name: "bad name", s: api.Source{Name: "a b", Location: "http://127.0.0.1:5000"}, want: errdefs.ErrInvalidArgument},
		{name: "empty name", s: api.Source{Location: "http://127.0.0.1:5000"}, want: errdefs.ErrInvalidArgument},
		{name: "bad location", s: api.Source{Name: "x", Location: "ftp://host"}, want: errdefs.ErrInvalidArgument},
		{name: "no host", s: api.Source{Name: "x", Location: "http://"}, want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.AddSource(ctx, tt.s)
			mustClass(t, err, tt.want)
		})
	}
	mustClass(t, e.p.RemoveSource(ctx, "nothing"), errdefs.ErrNotFound)
	if err := e.p.RemoveSource(ctx, "catalog"); err != nil {
		t.Fatal(err)
	}

	// The defaults are not added again while a source is left.
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	e.p = e.open()
	list, _ = e.p.Sources(ctx)
	if len(list) != 1 || list[0].Name != "private" {
		t.Errorf("sources after a restart: %+v", list)
	}
}

func TestMetricsText(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	e.mustInstall(nano10586())
	e.cat.tap.mu.Lock()
	e.cat.tap.corrupt = e.cat.blobsOf("windowsservercore:10.0.14393.0")[1].String()
	e.cat.tap.mu.Unlock()
	if jb := e.install(api.InstallRequest{Name: "WindowsServerCore"}); jb.State != api.JobFailed {
		t.Fatalf("corrupt install: %s", jb.State)
	}
	var b strings.Builder
	if err := e.p.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		"# TYPE providerd_bytes_downloaded_total counter\n",
		`providerd_installs_total{result="succeeded"} 1` + "\n",
		`providerd_installs_total{result="failed"} 1` + "\n",
		`providerd_installs_total{result="canceled"} 0` + "\n",
		"providerd_install_failures_total 1\n",
		"# TYPE providerd_job_duration_seconds histogram\n",
		`providerd_job_duration_seconds_bucket{le="+Inf"} 2` + "\n",
		"providerd_job_duration_seconds_count 2\n",
		"providerd_jobs_running 0\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	// Every sample line is "name{labels} value" with a number.
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || !strings.HasPrefix(fields[0], "providerd_") {
			t.Errorf("bad sample line %q", line)
		}
	}
	if !strings.Contains(text, "providerd_bytes_downloaded_total ") || strings.Contains(text, "providerd_bytes_downloaded_total 0\n") {
		t.Errorf("no bytes counted:\n%s", text)
	}
}

// findImages is the images of Find.
func findImages(ctx context.Context, p *Provider, opts FindOptions) ([]api.FindEntry, error) {
	res, err := p.Find(ctx, opts)
	return res.Images, err
}
