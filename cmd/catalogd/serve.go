package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	catalogserver "github.com/containerprovider/containerprovider/server/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// DefaultListen is catalogd's default address: loopback only.
const DefaultListen = "127.0.0.1:5000"

// Abandoned uploads: a session untouched for uploadTTL is discarded, at
// start-up and then every purgeInterval.
const (
	uploadTTL     = 24 * time.Hour
	purgeInterval = time.Hour
)

// shutdownTimeout is how long a SIGINT or SIGTERM lets requests in flight
// finish before the connections are closed.
const shutdownTimeout = 30 * time.Second

type serveConfig struct {
	cli.DaemonFlags
	listen          string
	htpasswd        string
	insecureDev     bool
	readOnly        bool
	tlsCert         string
	tlsKey          string
	maxManifestSize int64
	maxBlobSize     int64
	authFailLimit   int
	authFailWindow  time.Duration
	tokenRealm      string
}

func (c *serveConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, rootUsage)
	f.StringVar(&c.listen, "listen", DefaultListen, "address to listen on; any other than loopback should have TLS")
	f.StringVar(&c.htpasswd, "htpasswd", "", "htpasswd file of bcrypt hashes for pushes and deletes (default <root>/auth/htpasswd, created with a user admin on first start)")
	f.BoolVar(&c.insecureDev, "insecure-dev", false, "DEVELOPMENT ONLY: anyone can push and delete, without credentials")
	f.BoolVar(&c.readOnly, "read-only", false, "refuse every push and delete (403)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.SizeVar(&c.maxManifestSize, "max-manifest-size", catalog.DefaultMaxManifestSize, "largest manifest accepted (bytes, or with a unit: 4MiB)")
	f.SizeVar(&c.maxBlobSize, "max-blob-size", catalogserver.DefaultMaxBlobSize, "largest blob accepted (bytes, or with a unit: 64GiB)")
	f.IntVar(&c.authFailLimit, "auth-fail-limit", catalogserver.DefaultAuthFailures,
		"failed authentications a client address may make within --auth-fail-window; the next attempts get 429 for the window, doubled at each further lock-out up to 16 windows")
	f.DurationVar(&c.authFailWindow, "auth-fail-window", catalogserver.DefaultAuthFailWindow,
		"window of --auth-fail-limit and length of the first lock-out (a Go `duration`: 1m, 30s)")
	f.StringVar(&c.tokenRealm, "token-realm", "",
		"URL of the token endpoint as clients reach it, for the realm of the Bearer challenge, e.g. https://registry.example.com/token behind a proxy that terminates TLS (default: the scheme and Host of each request)")
}

// check validates the serve flags.
func (c *serveConfig) check(args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected arguments %q", args)
	}
	if err := c.DaemonFlags.Check(); err != nil {
		return err
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return cli.Usagef("--tls-cert and --tls-key go together")
	}
	if c.insecureDev && c.htpasswd != "" {
		return cli.Usagef("--insecure-dev and --htpasswd exclude each other")
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		return cli.Usagef("--listen %q: %v", c.listen, err)
	}
	if c.maxManifestSize <= 0 || c.maxBlobSize <= 0 {
		return cli.Usagef("--max-manifest-size and --max-blob-size must be positive")
	}
	if c.authFailLimit < 1 {
		return cli.Usagef("--auth-fail-limit %d: must be at least 1", c.authFailLimit)
	}
	if c.authFailWindow < time.Second {
		return cli.Usagef("--auth-fail-window %v: must be at least 1s", c.authFailWindow)
	}
	if err := catalogserver.ValidateTokenRealm(c.tokenRealm); err != nil {
		return cli.Usagef("--token-realm: %v", err)
	}
	return nil
}

func (a *app) setupServe(f *cli.FlagSet) func(context.Context, []string) error {
	c := &serveConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		if err := c.check(args); err != nil {
			return err
		}
		return a.serve(ctx, c)
	}
}

func (a *app) serve(ctx context.Context, c *serveConfig) error {
	log := c.Logger(a.stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	rt, err := openRoot(c.Root, catalog.WithMaxManifestSize(c.maxManifestSize))
	if err != nil {
		return err
	}
	defer rt.Close()
	if rt.indexBuilt > 0 {
		log.WithField("took", rt.indexBuilt.Round(time.Millisecond)).Info("built the find index from the repositories")
	}

	opts := []catalogserver.Opt{
		catalogserver.WithLogger(log),
		catalogserver.WithReadOnly(c.readOnly),
		catalogserver.WithInsecureDev(c.insecureDev),
		catalogserver.WithMaxManifestSize(c.maxManifestSize),
		catalogserver.WithMaxBlobSize(c.maxBlobSize),
		catalogserver.WithAuthFailureLimit(c.authFailLimit, c.authFailWindow),
		catalogserver.WithTokenRealm(c.tokenRealm),
	}
	switch {
	case c.insecureDev:
		log.Warn("WARNING: --insecure-dev: ANYONE who can reach this server can push and delete images, without credentials. Never use it outside development.")
	case c.readOnly && c.htpasswd == "":
		// Every write is refused: no credentials are needed.
	default:
		h, err := loadCredentials(c, log)
		if err != nil {
			return err
		}
		opts = append(opts, catalogserver.WithHtpasswd(h))
	}

	handler, err := catalogserver.New(rt.reg, opts...)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	tls := c.tlsCert != ""
	if !tls && !isLoopback(ln.Addr()) {
		log.WithField("listen", ln.Addr().String()).Warn("listening beyond loopback without TLS: credentials and images cross the network in clear text; give --tls-cert and --tls-key")
	}
	srv := middleware.NewServer(c.listen, handler, middleware.WithErrorLogger(log))
	go purgeUploads(ctx, rt.reg, log)
	log.WithFields(logrus.Fields{
		"listen":    ln.Addr().String(),
		"root":      c.Root,
		"tls":       tls,
		"read_only": c.readOnly,
	}).Info("catalogd serving")
	serve := srv.Serve
	if tls {
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, c.tlsCert, c.tlsKey) }
	}
	return cli.Serve(ctx, srv, ln, serve, shutdownTimeout, func() { log.Info("shutting down") })
}

// purgeUploads discards abandoned upload sessions and their data until ctx
// ends.
func purgeUploads(ctx context.Context, reg *catalog.Registry, log *logrus.Logger) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		n, err := reg.PurgeUploads(ctx, uploadTTL)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WithError(err).Warn("purging abandoned uploads")
		case n > 0:
			log.WithField("count", n).Info("purged abandoned uploads")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// isLoopback reports whether addr only listens on a loopback interface.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// loadCredentials loads the htpasswd file of --htpasswd, or the root's
// default one, which it creates with a user admin on first start.
func loadCredentials(c *serveConfig, log *logrus.Logger) (*catalogserver.Htpasswd, error) {
	path := c.htpasswd
	if path == "" {
		path = defaultHtpasswd(c.Root)
		created, err := ensureAdmin(c.Root)
		if err != nil {
			return nil, err
		}
		if created {
			log.WithFields(logrus.Fields{"user": "admin", "password_file": adminPasswordPath(c.Root), "htpasswd": path}).
				Warn("created the user admin for pushes and deletes; its password is in the password file (add users with `catalogd passwd`)")
		}
	}
	h, err := catalogserver.LoadHtpasswd(path)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: create it with `catalogd passwd --htpasswd %s USER`", err, path)
	}
	if err != nil {
		return nil, err
	}
	if len(h.Users()) == 0 {
		log.WithField("htpasswd", path).Warn("the htpasswd file has no users: nobody can push or delete")
	}
	log.WithFields(logrus.Fields{
		"htpasswd":         path,
		"users":            len(h.Users()),
		"auth_fail_limit":  c.authFailLimit,
		"auth_fail_window": c.authFailWindow.String(),
	}).Info("pushes and deletes need credentials")
	return h, nil
}

// ensureAdmin creates the root's default credentials when its htpasswd
// file does not exist: see catalogserver.CreateDefaultUser.
func ensureAdmin(root string) (bool, error) {
	return catalogserver.CreateDefaultUser(defaultHtpasswd(root), adminPasswordPath(root), "admin")
}
