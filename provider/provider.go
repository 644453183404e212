// Package provider is providerd's engine: sources, Find, install jobs,
// Get and Remove of installed images, and garbage collection. It knows
// nothing of HTTP; server/provider translates its API v1 onto these calls.
package provider

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider/mirror"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// Source is what the provider needs of a source. provider/source.Client
// implements it over the OCI Distribution protocol.
type Source interface {
	// Name is the source's name.
	Name() string
	// Sync brings the source's mirror up to date: from catalogd's change
	// feed, or, from a registry without it, by a crawl of _catalog,
	// tags/list and the manifests (see provider/source). The provider
	// applies OneGet's rules (find.Filter) to what the mirrors hold, so
	// every source follows the same rules.
	Sync(ctx context.Context, m *mirror.Mirror) error
	// Lookup reads what the source has now of one repository into the
	// mirror, for a name the mirror does not know (or, with an empty
	// repo, catches a feed up).
	Lookup(ctx context.Context, m *mirror.Mirror, repo string) error
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
	// CrawlInterval is the wait between two crawls of a plain registry's
	// mirror (default DefaultCrawlInterval).
	CrawlInterval time.Duration
	// MirrorTimeout bounds the wait for a registry mirror's answer, and
	// for each read of a blob from it, before the next mirror or the
	// source's location is asked (default DefaultMirrorTimeout).
	MirrorTimeout time.Duration
	// Parallelism bounds the concurrent blob downloads of one job
	// (default 4).
	Parallelism int
	// NewSource makes sources; default source.New with HTTPClient.
	NewSource SourceFactory
	// HTTPClient is the client of the default NewSource (default: a
	// client with sane timeouts).
	HTTPClient *http.Client
	// Logger receives the provider's logs (default: logrus's standard
	// logger). Job lines carry job_id, image and digest fields.
	Logger *logrus.Logger

	// ContainerMaxSize bounds the bytes of the files of one container,
	// those a copy brings included (default DefaultContainerMaxSize,
	// 16 GiB). A copy that would go over is TooLarge.
	ContainerMaxSize int64
	// SpoolMaxSize bounds the bytes that an install from a stream, or from
	// a compressed file, writes under <root>/tmp before it reads them
	// (default DefaultSpoolMaxSize, 64 GiB). An archive that would go over
	// is TooLarge.
	SpoolMaxSize int64
	// JobRetention is how long a finished job stays listed (default
	// DefaultJobRetention, 24h); a negative value keeps finished jobs
	// whatever their age.
	JobRetention time.Duration
	// JobRetentionCount is how many finished jobs stay listed, the newest
	// (default DefaultJobRetentionCount, 1000); a negative value keeps
	// them whatever their number. Running and queued jobs are never
	// pruned.
	JobRetentionCount int

	// tune, when set, adjusts the provider before New resumes any job.
	// Tests use it to inject the disk probe, the margin and the backoff.
	tune func(*Provider)
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
// or by ID (a digest, or a unique prefix of at least 4 hex of an id) and
// IDs (more of them, which remove together).
type RemoveOptions struct {
	Name string
	api.VersionOptions
	ID  string
	IDs []string
	// Force removes every image that Name selects. Without it, a Name that
	// selects more than one image (a wildcard, several versions) is
	// refused with a *MatchesError listing them, and nothing is removed.
	// IDs name each image and need no Force.
	Force bool
	// WhatIf selects and checks as the removal would, dependents and
	// Force included, and removes nothing: the result lists what would
	// go.
	WhatIf bool
}

// The names of the files under Config.Root.
const (
	dbFile     = "provider.db"
	contentDir = "content"
	// tmpDir holds spooled archives; it is emptied at each start.
	tmpDir = "tmp"
)

// DefaultParallelism is the number of blobs a job downloads at once when
// Config.Parallelism is not set.
const DefaultParallelism = 4

// defaultDiskMargin is the free space an install leaves on the disk on top
// of the bytes it still has to download.
const defaultDiskMargin = 32 << 20

// Provider is the engine. All methods are safe for concurrent use.
type Provider struct {
	root        string
	db          *meta.DB
	cs          content.Store
	log         *logrus.Logger
	newSource   SourceFactory
	parallelism int

	// containerMaxSize bounds the files of a container, spoolMaxSize the
	// spool of an archive.
	containerMaxSize int64
	spoolMaxSize     int64
	// retention prunes the finished jobs.
	retention *retention

	// freeSpace reports the bytes available to the provider on the
	// filesystem of path; diskMargin is kept free on top of an install.
	freeSpace  func(path string) (uint64, error)
	diskMargin int64
	retry      retryPolicy

	// jobCtx is the parent of every job and download; Close cancels it.
	jobCtx  context.Context
	stopAll context.CancelFunc
	// running counts the goroutines of jobs and downloads, which Close
	// waits for.
	running sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	active   map[string]*job        // jobs that have not ended, by id
	byTarget map[digest.Digest]*job // the same, by the digest they install
	sources  map[string]Source      // clients of the sources, by name
	syncers  map[string]*syncer     // the syncs of their mirrors, by name

	// feedInterval and crawlInterval are the waits between the syncs of
	// a mirror (DefaultFeedInterval, DefaultCrawlInterval).
	feedInterval, crawlInterval time.Duration
	// mirrorTimeout is Config.MirrorTimeout.
	mirrorTimeout time.Duration
	// platform is the platform whose manifest an install takes from an
	// index (hostPlatform).
	platform ocispec.Platform
	// firstSyncWait is how long a Find waits for the first sync of an
	// incomplete mirror (defaultFirstSyncWait).
	firstSyncWait time.Duration

	// gcMu orders garbage collection against leases: a collection holds
	// it from mark to sweep, a lease (of a job, a save, a load or a
	// commit) for reading while it is written, so a blob is either marked
	// or looked up after the sweep. Nothing else holds it: no file of a
	// caller is opened or read under it.
	gcMu sync.RWMutex
	// collections counts the garbage collections since New; guarded by
	// gcMu (written under its lock).
	collections uint64

	flightMu sync.Mutex
	flights  map[digest.Digest]*flight // downloads in progress, by digest

	ctrLocks containerLocks

	metrics metrics
}

// New opens (creating if needed) the provider root and resumes the jobs that
// a previous process left unfinished.
//
// The root holds provider.db (the bbolt database, locked by one process at
// a time: a second New on the same root gives ErrUnavailable), content/
// (the blobs), containers/<id>/rootfs (the containers' directories) and
// tmp/ (spooled archives). Container directories without a record and the
// files of tmp/ are leftovers of an interrupted process: New deletes them.
// The default sources are added when the database has none. Finished
// jobs beyond Config.JobRetention and Config.JobRetentionCount are pruned,
// and the leases that no unfinished job holds (those of saves, loads and
// commits that the previous process did not end) are deleted. Unfinished
// jobs (queued or running) start again in the background; their downloads
// resume at the data already on disk. The caller closes the Provider.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("provider root: empty: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Parallelism < 0 {
		return nil, fmt.Errorf("parallelism %d: negative: %w", cfg.Parallelism, errdefs.ErrInvalidArgument)
	}
	if cfg.ContainerMaxSize < 0 || cfg.SpoolMaxSize < 0 {
		return nil, fmt.Errorf("container max size %d, spool max size %d: negative: %w",
			cfg.ContainerMaxSize, cfg.SpoolMaxSize, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("provider root %s: %w", cfg.Root, err)
	}
	db, err := meta.Open(filepath.Join(cfg.Root, dbFile))
	if err != nil {
		return nil, err
	}
	if err := buildImageList(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	cs, err := content.NewStore(filepath.Join(cfg.Root, contentDir))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	p := &Provider{
		root:             cfg.Root,
		db:               db,
		cs:               cs,
		log:              cfg.Logger,
		newSource:        cfg.NewSource,
		parallelism:      cfg.Parallelism,
		containerMaxSize: cmp.Or(cfg.ContainerMaxSize, DefaultContainerMaxSize),
		spoolMaxSize:     cmp.Or(cfg.SpoolMaxSize, DefaultSpoolMaxSize),
		retention:        newRetention(cfg.JobRetention, cfg.JobRetentionCount),
		freeSpace:        freeSpace,
		diskMargin:       defaultDiskMargin,
		retry:            defaultRetryPolicy,
		active:           map[string]*job{},
		byTarget:         map[digest.Digest]*job{},
		sources:          map[string]Source{},
		syncers:          map[string]*syncer{},
		feedInterval:     DefaultFeedInterval,
		firstSyncWait:    defaultFirstSyncWait,
		platform:         hostPlatform(),
		crawlInterval:    cmp.Or(cfg.CrawlInterval, DefaultCrawlInterval),
		mirrorTimeout:    cmp.Or(cfg.MirrorTimeout, DefaultMirrorTimeout),
		flights:          map[digest.Digest]*flight{},
	}
	if p.log == nil {
		p.log = logrus.StandardLogger()
	}
	if p.parallelism == 0 {
		p.parallelism = DefaultParallelism
	}
	if p.newSource == nil {
		p.newSource = defaultSourceFactory(cfg.HTTPClient)
	}
	p.jobCtx, p.stopAll = context.WithCancel(context.WithoutCancel(ctx))
	if cfg.tune != nil {
		cfg.tune(p)
	}
	if err := p.addDefaultSources(ctx, cfg.DefaultSources); err != nil {
		p.stopAll()
		_ = db.Close()
		return nil, err
	}
	if err := p.cleanOrphans(ctx); err != nil {
		p.stopAll()
		_ = db.Close()
		return nil, err
	}
	// One read of the job records' heads serves retention and resumption.
	var heads []jobHead
	if err := db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		heads, err = listJobHeads(tx)
		return err
	}); err != nil {
		p.stopAll()
		_ = db.Close()
		return nil, err
	}
	if err := p.startRetention(ctx, heads); err != nil {
		p.stopAll()
		_ = db.Close()
		return nil, err
	}
	if err := p.resumeJobs(ctx, heads); err != nil {
		_ = p.Close()
		return nil, err
	}
	if err := p.startSyncers(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the running jobs (they resume at the next New) and closes the
// database.
//
// The jobs stop without being marked failed or canceled: their records stay
// queued or running, their leases stay in place, and their partial
// downloads stay in the content store's ingests. Close waits for them to
// stop. Calls after the first return nil.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	p.stopAll()
	p.running.Wait()
	return p.db.Close()
}

// isClosing reports whether Close has begun.
func (p *Provider) isClosing() bool { return p.jobCtx.Err() != nil }

// defaultHTTPClient bounds the dial, the TLS handshake and the wait for
// response headers, but not the whole request: a blob of several GB may
// take long, and the download's context ends it when needed.
func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr}
}

// errClosed is returned by calls made after Close.
var errClosed = fmt.Errorf("provider is closed: %w", errdefs.ErrUnavailable)
