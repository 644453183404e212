package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/provider"
	dockerserver "github.com/containerprovider/containerprovider/server/docker"
	"github.com/containerprovider/containerprovider/server/listener"
	"github.com/containerprovider/containerprovider/server/middleware"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

// DefaultListen is providerd's default TCP address: loopback only, and
// behind the bearer token.
const DefaultListen = "127.0.0.1:5050"

// DefaultSocketGroup is the group that owns the unix sockets: its members
// may use providerd, as the members of the docker group may use dockerd.
const DefaultSocketGroup = "containerprovider"

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
  providerd serves API v1 and the Docker Engine API (v1.51) on unix sockets in
  the run directory: providerd.sock (cimage, scripts) and docker.sock
  (DOCKER_HOST=unix://RUN-DIR/docker.sock). Each has mode 0660 and the group
  --socket-group, so that its members, and root, may use it: that is the
  credential, as the docker group is dockerd's. A group the system does not
  know leaves the sockets to root alone, with a warning.
  Every TCP listener, loopback included, needs "Authorization: Bearer <token>"
  on every request, /healthz included. The token is the first line of
  --token-file; without it, providerd makes one on first start
  (ROOT/auth/token, 32 random bytes, mode 0600), which cimage reads when its
  user can. A --listen or --docker-listen address beyond loopback also needs
  --tls-cert and --tls-key.
  Paths on this host (save --remote-path, install --path --remote-path) are
  only honoured on the unix socket, and are opened with the rights of the
  calling user: the files written are the caller's, with mode 0600.
  On SIGINT or SIGTERM it stops serving and closes the provider; unfinished
  install jobs resume where their data stopped at the next start.
`

type serveConfig struct {
	cli.DaemonFlags
	runDir       string
	socketGroup  string
	listen       string
	dockerListen string
	sources      []api.Source
	parallelism  int
	tlsCert      string
	tlsKey       string
	tokenFile    string

	containerMaxSize  int64
	spoolMaxSize      int64
	jobRetention      time.Duration
	jobRetentionCount int
	mirrorTimeout     time.Duration
}

func (c *serveConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, "directory of the provider: database, content store and auth/token")
	f.StringVar(&c.runDir, "run-dir", "", "directory of the unix sockets providerd.sock and docker.sock (default "+defaultRunDirHelp+")")
	f.StringVar(&c.socketGroup, "socket-group", DefaultSocketGroup, "group (name or gid) whose members may use the unix sockets")
	f.StringVar(&c.listen, "listen", DefaultListen, "TCP address of API v1, behind the bearer token; empty is off; beyond loopback it needs --tls-cert and --tls-key")
	f.StringVar(&c.dockerListen, "docker-listen", "", "TCP address of the Docker Engine API, behind the bearer token; empty is off (docker.sock serves it); beyond loopback it needs --tls-cert and --tls-key")
	sourcesVar(f, &c.sources, "source", []api.Source{DefaultSource},
		"a source to add on first start, when the database has none; trusted marks it as one PackageManagement installs from without asking (repeatable; the environment variable takes a comma-separated list)")
	f.DurationVar(&c.mirrorTimeout, "mirror-timeout", provider.DefaultMirrorTimeout, "how long a source's registry mirror may take to answer, or to send the next bytes of a blob, before the next mirror or the source is asked")
	f.IntVar(&c.parallelism, "parallelism", provider.DefaultParallelism, "blobs one install job downloads at once (1-64)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve the TCP listeners with HTTPS")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.SizeVar(&c.containerMaxSize, "container-max-size", provider.DefaultContainerMaxSize, "most bytes the files of one container may hold, those a copy brings included")
	f.SizeVar(&c.spoolMaxSize, "spool-max-size", provider.DefaultSpoolMaxSize, "most bytes an install from a streamed or compressed archive may spool under ROOT/tmp")
	f.DurationVar(&c.jobRetention, "job-retention", provider.DefaultJobRetention, "how long a finished job stays listed (a Go duration; negative: no age limit)")
	f.IntVar(&c.jobRetentionCount, "job-retention-count", provider.DefaultJobRetentionCount, "how many finished jobs stay listed, the newest (negative: no count limit)")
	f.StringVar(&c.tokenFile, "token-file", "", fmt.Sprintf("file whose first line is the bearer token of the TCP listeners (at least %d characters; default ROOT/auth/token, made on first start)", minTokenLength))
}

// check validates the serve flags, the exposure rule included.
func (c *serveConfig) check(args []string) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected arguments %q", args)
	}
	if err := c.DaemonFlags.Check(); err != nil {
		return err
	}
	if c.mirrorTimeout <= 0 {
		return cli.Usagef("--mirror-timeout %s: want a positive duration", c.mirrorTimeout)
	}
	if c.parallelism < 1 || c.parallelism > maxParallelism {
		return cli.Usagef("--parallelism %d: want 1 to %d", c.parallelism, maxParallelism)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return cli.Usagef("--tls-cert and --tls-key go together")
	}
	if c.containerMaxSize <= 0 || c.spoolMaxSize <= 0 {
		return cli.Usagef("--container-max-size and --spool-max-size must be positive")
	}
	if c.jobRetention == 0 || c.jobRetentionCount == 0 {
		return cli.Usagef("--job-retention and --job-retention-count: 0 would forget every job as it ends; give a positive value, or a negative one for no limit")
	}
	if c.socketGroup == "" {
		return cli.Usagef("--socket-group: empty")
	}
	hasTLS := c.tlsCert != ""
	if c.listen != "" {
		if err := checkExposure(c.listen, hasTLS); err != nil {
			return err
		}
	}
	if c.dockerListen == "" {
		return nil
	}
	if c.dockerListen == c.listen && !strings.HasSuffix(c.listen, ":0") {
		return cli.Usagef("--docker-listen %q: the same address as --listen", c.dockerListen)
	}
	return checkFlagExposure("--docker-listen", c.dockerListen, hasTLS)
}

// checkExposure is the rule of --listen: every TCP listener needs the
// token, which is always there; loopback is allowed without TLS, any other
// address, all interfaces ("", 0.0.0.0, ::) included, only with TLS, so
// that the token does not cross a network in the clear. A host name other
// than localhost counts as beyond loopback, since what it resolves to may
// change. The error is a usage error (exit status 2).
func checkExposure(listen string, hasTLS bool) error {
	return checkFlagExposure("--listen", listen, hasTLS)
}

// checkFlagExposure is checkExposure for the address of flag.
func checkFlagExposure(flag, listen string, hasTLS bool) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return cli.Usagef("%s %q: %v", flag, listen, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return cli.Usagef("%s %q: bad port: %v", flag, listen, err)
	}
	if isLoopbackHost(host) || hasTLS {
		return nil
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	return cli.Usagef("%s: refusing to listen on %s (%s is not loopback) without TLS: give --tls-cert and --tls-key, or listen on 127.0.0.1",
		flag, listen, where)
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

// listeners are the listeners of one API.
type listeners struct {
	socket net.Listener
	tcp    net.Listener
}

func (l listeners) close() {
	for _, ln := range []net.Listener{l.socket, l.tcp} {
		if ln != nil {
			ln.Close()
		}
	}
}

// listenTCP listens on addr (nothing when empty), and checks that what was
// bound is on loopback unless TLS is on: localhost could resolve beyond it.
func listenTCP(flag, addr string, hasTLS bool) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (%s): %w", addr, flag, err)
	}
	if !isLoopbackAddr(ln.Addr()) && !hasTLS {
		ln.Close()
		return nil, cli.Usagef("%s: refusing to serve on %s, which is not loopback, without TLS", flag, ln.Addr())
	}
	return ln, nil
}

// serve runs providerd until ctx ends or a SIGINT or SIGTERM arrives.
func (a *app) serve(ctx context.Context, c *serveConfig) error {
	log := c.Logger(a.stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var tlsConfig *tls.Config
	if c.tlsCert != "" {
		var err error
		if tlsConfig, err = listener.TLSConfig(c.tlsCert, c.tlsKey); err != nil {
			return cli.Usagef("--tls-cert %s, --tls-key %s: %v", c.tlsCert, c.tlsKey, err)
		}
	}
	token, tokenFile, err := loadToken(c.Root, c.tokenFile, log)
	if err != nil {
		return err
	}
	runDir := c.runDir
	if runDir == "" {
		runDir = defaultRunDir(c.Root, a.getenv)
	}

	// Listen before opening the provider, so that a socket or a port in
	// use fails before any job resumes.
	v1, docker, err := a.listen(c, runDir, tlsConfig != nil, log)
	if err != nil {
		return err
	}
	defer v1.close()
	defer docker.close()

	p, err := provider.New(ctx, provider.Config{
		Root:           c.Root,
		DefaultSources: c.sources,
		Parallelism:    c.parallelism,
		MirrorTimeout:  c.mirrorTimeout,
		Logger:         log,

		ContainerMaxSize:  c.containerMaxSize,
		SpoolMaxSize:      c.spoolMaxSize,
		JobRetention:      c.jobRetention,
		JobRetentionCount: c.jobRetentionCount,
	})
	if err != nil {
		return fmt.Errorf("provider root %s: %w", c.Root, err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			log.WithError(err).Error("closing the provider")
		}
	}()

	handler, err := providerserver.New(p, providerserver.WithLogger(log), providerserver.WithVersion(version), providerserver.WithToken(token))
	if err != nil {
		return err
	}
	dockerHandler, err := dockerserver.New(p, dockerserver.WithLogger(log), dockerserver.WithVersion(version),
		dockerserver.WithRoot(c.Root), dockerserver.WithToken(token))
	if err != nil {
		return err
	}
	// The servers' WriteTimeout (middleware.DefaultWriteTimeout) bounds
	// every answer but the event streams of install?follow,
	// /v1/jobs/{id}/events and docker pull, which move their write deadline
	// before each event (see server/provider.StreamWriteWindow), so an
	// install of any length streams to its end. Shutdown ends the streams
	// first.
	var g listener.Group
	for _, api := range []struct {
		name    string
		handler interface {
			http.Handler
			StopStreams()
		}
		lns listeners
	}{{"API v1", handler, v1}, {"Docker Engine API", dockerHandler, docker}} {
		// One http.Server per listener: net/http configures HTTP/2 for
		// Serve and ServeTLS apart, and they race on one server, or on one
		// tls.Config.
		newServer := func(useTLS bool) *http.Server {
			srv := middleware.NewServer("", api.handler, middleware.WithErrorLogger(log))
			if useTLS {
				srv.TLSConfig = tlsConfig.Clone()
			}
			srv.RegisterOnShutdown(api.handler.StopStreams)
			return srv
		}
		fields := logrus.Fields{"api": api.name}
		if api.lns.socket != nil {
			g.Add(newServer(false), api.lns.socket, false)
			fields["socket"] = api.lns.socket.Addr().String()
		}
		if api.lns.tcp != nil {
			g.Add(newServer(tlsConfig != nil), api.lns.tcp, tlsConfig != nil)
			fields["listen"] = api.lns.tcp.Addr().String()
			fields["tls"] = tlsConfig != nil
		}
		log.WithFields(fields).Info("serving")
	}
	log.WithFields(logrus.Fields{
		"root":        c.Root,
		"token_file":  tokenFile,
		"parallelism": c.parallelism,
		"version":     version,
	}).Info("providerd serving")
	if a.onListen != nil && v1.tcp != nil {
		a.onListen(v1.tcp.Addr())
	}
	if a.onDockerListen != nil && docker.tcp != nil {
		a.onDockerListen(docker.tcp.Addr())
	}
	if a.onSockets != nil {
		a.onSockets(v1.socket.Addr(), docker.socket.Addr())
	}
	return g.Serve(ctx, shutdownTimeout, func() {
		log.Info("shutting down; unfinished jobs resume at the next start")
	})
}

// listen opens the sockets and the TCP listeners of both APIs.
func (a *app) listen(c *serveConfig, runDir string, hasTLS bool, log *logrus.Logger) (v1, docker listeners, err error) {
	defer func() {
		if err != nil {
			v1.close()
			docker.close()
		}
	}()
	gid := socketGroup(c.socketGroup, log)
	if v1.socket, err = listenSocket(runDir, "providerd", gid); err != nil {
		return v1, docker, err
	}
	if docker.socket, err = listenSocket(runDir, "docker", gid); err != nil {
		return v1, docker, err
	}
	if v1.tcp, err = listenTCP("--listen", c.listen, hasTLS); err != nil {
		return v1, docker, err
	}
	if docker.tcp, err = listenTCP("--docker-listen", c.dockerListen, hasTLS); err != nil {
		return v1, docker, err
	}
	return v1, docker, nil
}
