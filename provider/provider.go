// Package provider is providerd's engine: sources, Find, install jobs,
// Get and Remove of installed images, and garbage collection. It knows
// nothing of HTTP; server/provider translates its API v1 onto these calls.
package provider

// CONTRACT SKELETON: the bodies are filled in by the provider
// implementation. The exported signatures and doc comments are the contract
// that server/provider and cmd/providerd build against.

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
)

// Source is what the provider needs of a source. provider/source.Client
// implements it over the OCI Distribution protocol.
type Source interface {
	// Name is the source's name.
	Name() string
	// Catalog lists every image of the source, every version, each with
	// Source set to Name(): from catalogd's find extension in one request
	// (GET /v2/_find?allVersions=true), or, from a registry without it,
	// from _catalog, tags/list and the manifests' annotations. The
	// provider applies OneGet's rules (find.Filter) to the merged lists,
	// so every source follows the same rules.
	Catalog(ctx context.Context) ([]api.FindEntry, error)
	// Manifest fetches a manifest by tag or digest and verifies its bytes
	// against its digest (the reference's when it is one).
	Manifest(ctx context.Context, repo, reference string) (ocispec.Descriptor, []byte, error)
	// Blob opens a blob from offset on (HTTP Range). The caller closes the
	// reader. It does not verify the digest: the content store does.
	Blob(ctx context.Context, repo string, dgst digest.Digest, offset int64) (io.ReadCloser, error)
}

// SourceFactory makes the Source of a source's settings.
type SourceFactory func(api.Source) (Source, error)

// Config configures New.
type Config struct {
	// Root holds the provider's database and content store.
	Root string
	// DefaultSources are added when the database has no source yet (first
	// start), e.g. the local catalogd.
	DefaultSources []api.Source
	// Parallelism bounds the concurrent blob downloads of one job
	// (default 4).
	Parallelism int
	// NewSource makes sources; default source.New with HTTPClient.
	NewSource SourceFactory
	// HTTPClient is the client of the default NewSource (default: a
	// client with sane timeouts).
	HTTPClient *http.Client
	Logger     *logrus.Logger
}

// FindOptions are the options of Find: OneGet's, plus a source filter.
type FindOptions struct {
	Name string
	api.VersionOptions
	// Source limits the search to one source; empty searches all.
	Source string
}

// GetOptions filter Get-ContainerImage. With no version option every
// installed version is listed.
type GetOptions struct {
	// Name matches case-insensitively with * and ? wildcards, against the
	// display name or the repository.
	Name      string
	Publisher string
	api.VersionOptions
	// ChildOf keeps the images whose parent is the given image: a name,
	// "name:version", a digest or an id prefix.
	ChildOf string
}

// RemoveOptions select the images to remove: by Name with version options,
// or by ID (a digest, or a unique prefix of at least 4 hex of an id).
type RemoveOptions struct {
	Name string
	api.VersionOptions
	ID string
}

// Provider is the engine. All methods are safe for concurrent use.
type Provider struct{}

// New opens (creating if needed) the provider root and resumes the jobs that
// a previous process left unfinished.
func New(ctx context.Context, cfg Config) (*Provider, error) { panic("unimplemented") }

// Close stops the running jobs (they resume at the next New) and closes the
// database.
func (p *Provider) Close() error { panic("unimplemented") }

// Sources lists the sources, passwords left out.
func (p *Provider) Sources(ctx context.Context) ([]api.Source, error) { panic("unimplemented") }

// AddSource adds a source; AlreadyExists if the name is taken.
func (p *Provider) AddSource(ctx context.Context, s api.Source) (api.Source, error) {
	panic("unimplemented")
}

// RemoveSource removes a source; NotFound if there is none by that name.
func (p *Provider) RemoveSource(ctx context.Context, name string) error { panic("unimplemented") }

// Find searches every source (or one) with OneGet's rules.
func (p *Provider) Find(ctx context.Context, opts FindOptions) ([]api.FindEntry, error) {
	panic("unimplemented")
}

// Install validates req and starts an install job, or returns the job
// already installing the same image. Bad input is refused before any job
// exists. The job runs until it ends, whatever happens to ctx.
func (p *Provider) Install(ctx context.Context, req api.InstallRequest) (api.Job, error) {
	panic("unimplemented")
}

// Jobs lists the jobs, newest first.
func (p *Provider) Jobs(ctx context.Context) ([]api.Job, error) { panic("unimplemented") }

// Job returns one job.
func (p *Provider) Job(ctx context.Context, id string) (api.Job, error) { panic("unimplemented") }

// Watch streams a job's events: first a state event with the whole job,
// then progress, ending with a result event, after which the channel is
// closed. It is closed early when ctx ends; the job goes on.
func (p *Provider) Watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	panic("unimplemented")
}

// Cancel stops a job. Its downloaded data stays in the store's ingests for a
// later install to resume.
func (p *Provider) Cancel(ctx context.Context, id string) (api.Job, error) {
	panic("unimplemented")
}

// Images lists the installed images that match opts.
func (p *Provider) Images(ctx context.Context, opts GetOptions) ([]api.Image, error) {
	panic("unimplemented")
}

// Remove removes the selected images, then collects the blobs nothing
// references. An image that a child image or a container depends on is
// refused with a *DependentsError (class Conflict), and nothing is removed.
func (p *Provider) Remove(ctx context.Context, opts RemoveOptions) (api.RemoveResult, error) {
	panic("unimplemented")
}

// WriteMetrics writes the Prometheus text exposition of the provider's
// counters: bytes downloaded, installs, failures, job durations.
func (p *Provider) WriteMetrics(w io.Writer) error { panic("unimplemented") }
