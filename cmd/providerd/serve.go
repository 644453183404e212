package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/provider"
	dockerserver "github.com/containerprovider/containerprovider/server/docker"
	"github.com/containerprovider/containerprovider/server/middleware"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

// DefaultListen is providerd's default address: loopback only.
const DefaultListen = "127.0.0.1:5050"

// DefaultSource is the source added on first start: the local catalogd.
var DefaultSource = api.Source{Name: "catalog", Location: "http://127.0.0.1:5000"}

// minTokenLength is the shortest bearer token accepted from --token-file.
const minTokenLength = 16

// maxParallelism bounds --parallelism.
const maxParallelism = 64

// shutdownTimeout is how long a SIGINT or SIGTERM lets requests in flight
// finish before the connections are closed. Event streams do not count:
// they end at once, and their clients re-attach later.
const shutdownTimeout = 30 * time.Second

const serveNotes = `
  providerd listens on loopback only unless told otherwise. A --listen address
  that is not loopback is refused unless --tls-cert, --tls-key and --token-file
  are all given. With --token-file (on any address) every request, /healthz
  included, needs "Authorization: Bearer <token>".
  --docker-listen serves a subset of the Docker Engine API (v1.51) on its own
  address, for the docker CLI (DOCKER_HOST=tcp://ADDRESS); it is off when
  empty, and follows the same rule as --listen: beyond loopback it needs TLS
  and the token, which the docker CLI sends through the HttpHeaders of its
  config.json ("Authorization": "Bearer <token>").
  On SIGINT or SIGTERM it stops serving and closes the provider; unfinished
  install jobs resume where their data stopped at the next start.
`

type serveConfig struct {
	cli.DaemonFlags
	listen       string
	dockerListen string
	sources      []api.Source
	parallelism  int
	tlsCert      string
	tlsKey       string
	tokenFile    string
}

func (c *serveConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, "directory of the provider: database and content store")
	f.StringVar(&c.listen, "listen", DefaultListen, "address to listen on; beyond loopback it needs --tls-cert, --tls-key and --token-file")
	f.StringVar(&c.dockerListen, "docker-listen", "", "address of the Docker Engine API for the docker CLI; empty is off; beyond loopback it needs --tls-cert, --tls-key and --token-file")
	sourcesVar(f, &c.sources, "source", []api.Source{DefaultSource},
		"a source to add on first start, when the database has none (repeatable; the environment variable takes a comma-separated list)")
	f.IntVar(&c.parallelism, "parallelism", provider.DefaultParallelism, "blobs one install job downloads at once (1-64)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.StringVar(&c.tokenFile, "token-file", "", fmt.Sprintf("file whose first line is the bearer token every request must carry (at least %d characters)", minTokenLength))
}

// check validates the serve flags, the exposure rule included.
func (c *serveConfig) check(args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected arguments %q", args)
	}
	if err := c.DaemonFlags.Check(); err != nil {
		return err
	}
	if c.parallelism < 1 || c.parallelism > maxParallelism {
		return cli.Usagef("--parallelism %d: want 1 to %d", c.parallelism, maxParallelism)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return cli.Usagef("--tls-cert and --tls-key go together")
	}
	if err := checkExposure(c.listen, c.tlsCert != "", c.tokenFile != ""); err != nil {
		return err
	}
	if c.dockerListen == "" {
		return nil
	}
	if c.dockerListen == c.listen && !strings.HasSuffix(c.listen, ":0") {
		return cli.Usagef("--docker-listen %q: the same address as --listen", c.dockerListen)
	}
	return checkFlagExposure("--docker-listen", c.dockerListen, c.tlsCert != "", c.tokenFile != "")
}

// checkExposure is the rule of --listen: loopback is always allowed; any
// other address, all interfaces ("", 0.0.0.0, ::) included, only with TLS
// and a token. A host name other than localhost counts as beyond loopback,
// since what it resolves to may change. The error is a usage error (exit
// status 2).
func checkExposure(listen string, hasTLS, hasToken bool) error {
	return checkFlagExposure("--listen", listen, hasTLS, hasToken)
}

// checkFlagExposure is checkExposure for the address of flag.
func checkFlagExposure(flag, listen string, hasTLS, hasToken bool) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return cli.Usagef("%s %q: %v", flag, listen, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return cli.Usagef("%s %q: bad port: %v", flag, listen, err)
	}
	if isLoopbackHost(host) || (hasTLS && hasToken) {
		return nil
	}
	var missing []string
	if !hasTLS {
		missing = append(missing, "--tls-cert and --tls-key")
	}
	if !hasToken {
		missing = append(missing, "--token-file")
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	prefix := ""
	if flag != "--listen" {
		prefix = flag + ": "
	}
	return cli.Usagef("%srefusing to listen on %s (%s is not loopback) without TLS and a bearer token: give %s, or listen on 127.0.0.1",
		prefix, listen, where, strings.Join(missing, " and "))
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackAddr reports whether a listener's address is on loopback.
func isLoopbackAddr(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// readToken reads the bearer token: the first line of path, trimmed. A
// file that others can read is accepted with a warning.
func readToken(path string, log *logrus.Logger) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", cli.Usagef("--token-file: %v", err)
	}
	if !st.Mode().IsRegular() {
		return "", cli.Usagef("--token-file %s: not a regular file", path)
	}
	if st.Size() > 4096 {
		return "", cli.Usagef("--token-file %s: larger than 4 KiB; it should hold one token", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", cli.Usagef("--token-file: %v", err)
	}
	token, _, _ := strings.Cut(string(data), "\n")
	token = strings.TrimSpace(token)
	if len(token) < minTokenLength {
		return "", cli.Usagef("--token-file %s: the token must have at least %d characters", path, minTokenLength)
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", cli.Usagef("--token-file %s: the token must not hold spaces or control characters", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.WithField("token_file", path).Warn("the token file can be read by other users: chmod 600 it")
	}
	return token, nil
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

// serve runs providerd until ctx ends or a SIGINT or SIGTERM arrives.
func (a *app) serve(ctx context.Context, c *serveConfig) error {
	log := c.Logger(a.stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var token string
	if c.tokenFile != "" {
		t, err := readToken(c.tokenFile, log)
		if err != nil {
			return err
		}
		token = t
	}
	var tlsConfig *tls.Config
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return cli.Usagef("--tls-cert %s, --tls-key %s: %v", c.tlsCert, c.tlsKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// Listen before opening the provider, so that a port in use fails
	// before any job resumes.
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	defer ln.Close()
	// localhost could resolve beyond loopback: check what was bound.
	if !isLoopbackAddr(ln.Addr()) && (tlsConfig == nil || token == "") {
		return cli.Usagef("refusing to serve on %s, which is not loopback, without TLS and a bearer token", ln.Addr())
	}
	var dockerLn net.Listener
	if c.dockerListen != "" {
		if dockerLn, err = net.Listen("tcp", c.dockerListen); err != nil {
			return fmt.Errorf("listen on %s (--docker-listen): %w", c.dockerListen, err)
		}
		defer dockerLn.Close()
		if !isLoopbackAddr(dockerLn.Addr()) && (tlsConfig == nil || token == "") {
			return cli.Usagef("refusing to serve the Docker API on %s, which is not loopback, without TLS and a bearer token", dockerLn.Addr())
		}
	}

	p, err := provider.New(ctx, provider.Config{
		Root:           c.Root,
		DefaultSources: c.sources,
		Parallelism:    c.parallelism,
		Logger:         log,
	})
	if err != nil {
		return fmt.Errorf("provider root %s: %w", c.Root, err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			log.WithError(err).Error("closing the provider")
		}
	}()

	opts := []providerserver.Opt{providerserver.WithLogger(log), providerserver.WithVersion(version)}
	if token != "" {
		opts = append(opts, providerserver.WithToken(token))
	}
	handler, err := providerserver.New(p, opts...)
	if err != nil {
		return err
	}
	// The server's WriteTimeout (middleware.DefaultWriteTimeout) bounds
	// every answer but the event streams of install?follow and
	// /v1/jobs/{id}/events, which move their write deadline before each
	// event (see server/provider.StreamWriteWindow), so an install of any
	// length streams to its end. Shutdown ends the streams first.
	srv := middleware.NewServer(c.listen, handler, middleware.WithErrorLogger(log))
	srv.RegisterOnShutdown(handler.StopStreams)
	log.WithFields(logrus.Fields{
		"listen":      ln.Addr().String(),
		"root":        c.Root,
		"tls":         tlsConfig != nil,
		"token":       token != "",
		"parallelism": c.parallelism,
		"version":     version,
	}).Info("providerd serving")
	if a.onListen != nil {
		a.onListen(ln.Addr())
	}
	serve := srv.Serve
	if tlsConfig != nil {
		srv.TLSConfig = tlsConfig
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
	}
	if dockerLn == nil {
		return cli.Serve(ctx, srv, ln, serve, shutdownTimeout, func() {
			log.Info("shutting down; unfinished jobs resume at the next start")
		})
	}
	dockerOpts := []dockerserver.Opt{dockerserver.WithLogger(log), dockerserver.WithVersion(version), dockerserver.WithRoot(c.Root)}
	if token != "" {
		dockerOpts = append(dockerOpts, dockerserver.WithToken(token))
	}
	dockerHandler, err := dockerserver.New(p, dockerOpts...)
	if err != nil {
		return err
	}
	return a.serveBoth(ctx, log, srv, ln, serve, dockerHandler, dockerLn, tlsConfig)
}

// serveBoth serves API v1 on ln and the Docker API on dockerLn until ctx
// ends or either server fails; then both shut down.
func (a *app) serveBoth(ctx context.Context, log *logrus.Logger, srv *http.Server, ln net.Listener, serve func(net.Listener) error,
	dockerHandler *dockerserver.Server, dockerLn net.Listener, tlsConfig *tls.Config,
) error {
	dsrv := middleware.NewServer(dockerLn.Addr().String(), dockerHandler, middleware.WithErrorLogger(log))
	dsrv.RegisterOnShutdown(dockerHandler.StopStreams)
	dserve := dsrv.Serve
	if tlsConfig != nil {
		dsrv.TLSConfig = tlsConfig
		dserve = func(ln net.Listener) error { return dsrv.ServeTLS(ln, "", "") }
	}
	log.WithFields(logrus.Fields{"docker_listen": dockerLn.Addr().String(), "api_version": dockerserver.APIVersion}).Info("Docker Engine API serving")
	if a.onDockerListen != nil {
		a.onDockerListen(dockerLn.Addr())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dockerErr := make(chan error, 1)
	go func() {
		err := dserve(dockerLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else {
			err = fmt.Errorf("serving the Docker API on %s: %w", dockerLn.Addr(), err)
		}
		dockerErr <- err
		cancel()
	}()
	dockerStopped := make(chan error, 1)
	shutdownDocker := sync.OnceFunc(func() {
		go func() {
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			dockerStopped <- dsrv.Shutdown(sctx)
		}()
	})
	err := cli.Serve(ctx, srv, ln, serve, shutdownTimeout, func() {
		log.Info("shutting down; unfinished jobs resume at the next start")
		shutdownDocker()
	})
	shutdownDocker()
	if serr := <-dockerStopped; serr != nil && err == nil {
		err = fmt.Errorf("docker API shutdown: %w", serr)
	}
	if derr := <-dockerErr; derr != nil {
		return derr
	}
	return err
}
