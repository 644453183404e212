// Command soak churns installs and removes on one providerd for a set time
// and checks that its resources stay flat: resident memory, open
// descriptors and the size of its database, after warm-up, must end within
// 10% of their level at the reference point (minute 2, or 20% of the
// duration for shorter runs), with no error.
//
// It starts a freshly seeded catalogd and a fresh providerd, both on
// 127.0.0.1 (providerd with a bearer token), then runs --clients clients
// for --duration. Each client loops: install one of the seeded application
// images through API v1 (start the job, follow it to its end), then remove
// that image. The application images are all built on WindowsServerCore
// 10.0.14393.0, which the first installs bring in as their parent and which
// stays installed: clients share the parent and its blobs, and each removes
// only the application image it installed. While there are no more clients
// than application images, each client has images of its own, so no
// removal can be refused; with more clients, clients share images, and a
// removal refused with 409 Conflict or 404 Not Found because another client
// holds or already removed the image is the documented behaviour and is
// counted apart. Errors are everything else: a failed install job, a 5xx,
// a transport error, a timeout, any other refusal.
//
// Samples are taken after the first warm-up rounds, every --interval, at
// the reference point, at the end of the run, and once more after every
// image has been removed (when no blob should be left). RSS is the median
// of readings over the few seconds before a sample, with the clients
// running, so that it spans many garbage collection cycles; the other
// figures are read with the clients parked between two rounds and the idle
// connections closed, so that samples compare steady states rather than
// however many requests happen to be in flight.
//
// It is run by `make soak`, which builds the binaries first; the defaults
// come from SOAK_CLIENTS and SOAK_DURATION, the binaries from CP_BIN_DIR.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/bench/harness"
)

const (
	// warmupRounds is how many rounds every client finishes before the
	// first sample: the first one also installs the shared parent.
	warmupRounds = 2
	// limit is the growth allowed between the reference and the end.
	limit = 0.10
	// The timeouts of the calls of a round.
	installTimeout = 5 * time.Minute
	removeTimeout  = 2 * time.Minute
	// sampleTimeout bounds the API calls of a sample (the job list grows).
	sampleTimeout = 2 * time.Minute
	// RSS is read every rssEvery over rssWindow, and the median kept.
	rssWindow = 5 * time.Second
	rssEvery  = 250 * time.Millisecond
	// settleTime lets providerd close the connections the clients closed
	// before a sample counts its descriptors.
	settleTime = 500 * time.Millisecond
	// errorPause is a client's pause after a round that failed.
	errorPause = 100 * time.Millisecond
	// maxMessages is how many distinct error messages the report keeps.
	maxMessages = 10
)

type config struct {
	bin      string
	clients  int
	duration time.Duration
	interval time.Duration
	out      string
	keep     bool
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.bin, "bin", envOr("CP_BIN_DIR", "bin"), "directory holding catalogd and providerd (CP_BIN_DIR)")
	flag.IntVar(&cfg.clients, "clients", envInt("SOAK_CLIENTS", 8), "concurrent clients (SOAK_CLIENTS)")
	flag.DurationVar(&cfg.duration, "duration", envDuration("SOAK_DURATION", 10*time.Minute), "how long the clients run (SOAK_DURATION)")
	flag.DurationVar(&cfg.interval, "interval", 30*time.Second, "time between two samples")
	flag.StringVar(&cfg.out, "out", "", "write the Markdown report here too")
	flag.BoolVar(&cfg.keep, "keep", os.Getenv("SOAK_KEEP") != "", "keep the daemons' roots and logs (SOAK_KEEP)")
	flag.Parse()
	if cfg.clients < 1 || cfg.duration <= 0 || cfg.interval <= 0 {
		fatal(errors.New("--clients, --duration and --interval must be positive"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second Ctrl-C kills at once; the daemons get SIGKILL with us.
		<-ctx.Done()
		stop()
	}()

	work, err := os.MkdirTemp("", "cp-soak-")
	if err != nil {
		fatal(err)
	}
	s := &soak{cfg: cfg, work: work}
	s.procs.LogDir = work
	rep, err := s.run(ctx)
	s.procs.StopAll()
	if cfg.keep {
		harness.Step("kept the roots and logs in %s", work)
	} else {
		os.RemoveAll(work)
	}
	switch {
	case ctx.Err() != nil:
		if rep != nil {
			rep.interrupted = true
			fmt.Print(rep.markdown())
		}
		fmt.Fprintln(os.Stderr, "soak: interrupted; no report written")
		os.Exit(130)
	case err != nil:
		if rep != nil {
			fmt.Print(rep.markdown())
		}
		fatal(err)
	}
	text := rep.markdown()
	fmt.Print(text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			fatal(err)
		}
	}
	if !rep.passed() {
		fmt.Fprintln(os.Stderr, "soak: FAILED")
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "soak:", err)
	os.Exit(1)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fatal(fmt.Errorf("%s=%q: %v", k, v, err))
		}
		return n
	}
	return def
}

func envDuration(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fatal(fmt.Errorf("%s=%q: %v", k, v, err))
		}
		return d
	}
	return def
}

// app is one seeded application image.
type app struct {
	name, version, digest, source string
}

type soak struct {
	cfg   config
	work  string
	procs harness.Procs

	provRoot string
	provPID  int
	provAddr string
	token    string
	tr       *http.Transport
	hc       *http.Client
	c        *client.Client

	// owned[i] are the images client i cycles through.
	owned  [][]app
	nApps  int
	shared bool // clients share images: refused removals are expected

	// gate parks the clients between rounds while a sample is taken:
	// each round holds it for reading, a sample for writing.
	gate     sync.RWMutex
	start    time.Time // the clients' start
	deadline time.Time
	rounds   atomic.Int64
	perCli   []atomic.Int64
	errs     counter
	expected counter
	died     atomic.Bool // providerd exited before the end
}

// counter counts events and keeps the first distinct messages.
type counter struct {
	n    atomic.Int64
	mu   sync.Mutex
	msgs map[string]int
	keys []string
}

func (c *counter) add(msg string) {
	c.n.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string]int{}
	}
	if _, ok := c.msgs[msg]; !ok {
		if len(c.keys) >= maxMessages {
			msg = "(other messages)"
			if _, ok := c.msgs[msg]; !ok {
				c.keys = append(c.keys, msg)
			}
		} else {
			c.keys = append(c.keys, msg)
		}
	}
	c.msgs[msg]++
}

func (c *counter) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, k := range c.keys {
		out = append(out, fmt.Sprintf("%d x %s", c.msgs[k], k))
	}
	return out
}

// sample is one reading of providerd.
type sample struct {
	label    string
	at       time.Duration // since the clients' start
	rounds   int64
	errors   int64
	expected int64
	rss      int64
	fds      int
	sockets  int // of fds
	files    int // of fds
	db       int64
	blobs    int
	jobs     int // -1: the listing failed
	active   int // jobs not finished
}

func (s *soak) run(ctx context.Context) (*report, error) {
	if err := s.startDaemons(ctx); err != nil {
		return nil, err
	}
	if err := s.findApps(ctx); err != nil {
		return nil, err
	}
	rep := &report{cfg: s.cfg, apps: s.nApps, shared: s.shared, date: time.Now().UTC()}
	rep.refAt = min(2*time.Minute, s.cfg.duration/5)
	harness.Step("%d clients for %s; samples every %s, the reference at %s", s.cfg.clients, s.cfg.duration, s.cfg.interval, rep.refAt)

	sigCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.watch(ctx, cancel)
	s.start = time.Now()
	s.deadline = s.start.Add(s.cfg.duration)
	s.perCli = make([]atomic.Int64, s.cfg.clients)
	var wg sync.WaitGroup
	for i := range s.cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.client(ctx, i)
		}()
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()

	s.sampleLoop(ctx, rep, clientsDone)
	<-clientsDone
	if s.died.Load() {
		return rep, fmt.Errorf("providerd (pid %d) exited during the soak\n%s", s.provPID, s.logTail("providerd"))
	}
	if sigCtx.Err() != nil {
		return rep, sigCtx.Err()
	}
	rep.elapsed, rep.rounds = time.Since(s.start), s.rounds.Load()

	// Remove everything, parents included, then look at what is left.
	harness.Step("removing every image")
	rep.cleanupErrs = s.removeAll(ctx)
	final := s.sample(ctx, "all removed", false)
	rep.add(final)
	rep.ingests, _ = harness.CountFiles(filepath.Join(s.provRoot, "content", "ingest", "*"))
	if s.died.Load() {
		return rep, fmt.Errorf("providerd (pid %d) exited during the soak\n%s", s.provPID, s.logTail("providerd"))
	}
	if sigCtx.Err() != nil {
		return rep, sigCtx.Err()
	}
	rep.errMsgs = s.errs.messages()
	rep.expMsgs = s.expected.messages()
	return rep, nil
}

// startDaemons seeds and starts catalogd, then starts providerd with a
// token, both on free 127.0.0.1 ports.
func (s *soak) startDaemons(ctx context.Context) error {
	catalogd := filepath.Join(s.cfg.bin, "catalogd")
	providerd := filepath.Join(s.cfg.bin, "providerd")
	for _, b := range []string{catalogd, providerd} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (run make build, or set CP_BIN_DIR)", err)
		}
	}
	catRoot := filepath.Join(s.work, "catalogd")
	harness.Step("seeding catalogd")
	if err := harness.Run(nil, catalogd, "seed", "--root", catRoot); err != nil {
		return err
	}
	catAddr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	if _, err := s.procs.StartTied(syscall.SIGKILL, catalogd, nil, "serve", "--root", catRoot, "--listen", catAddr); err != nil {
		return err
	}
	if err := harness.WaitReady("http://" + catAddr + "/healthz"); err != nil {
		return fmt.Errorf("%w\n%s", err, s.logTail("catalogd"))
	}

	tokenFile := filepath.Join(s.work, "token")
	if s.token, err = harness.WriteToken(tokenFile); err != nil {
		return err
	}
	if s.provAddr, err = harness.FreeAddr(); err != nil {
		return err
	}
	s.provRoot = filepath.Join(s.work, "providerd")
	args := []string{"serve", "--root", s.provRoot, "--listen", s.provAddr, "--docker-listen=",
		"--token-file", tokenFile, "--source", "catalog=http://" + catAddr}
	if harness.HasFlag(providerd, "run-dir", "serve") {
		// A providerd that also serves unix sockets keeps them here rather
		// than in a directory another providerd may be using.
		args = append(args, "--run-dir", filepath.Join(s.work, "run"))
	}
	prov, err := s.procs.StartTied(syscall.SIGKILL, providerd, nil, args...)
	if err != nil {
		return err
	}
	s.provPID = prov.Process.Pid
	s.tr = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   s.cfg.clients + 2,
	}
	s.hc = &http.Client{Transport: s.tr}
	if s.c, err = client.New("http://"+s.provAddr, client.WithToken(s.token), client.WithHTTPClient(s.hc), client.WithUserAgent("containerprovider-soak")); err != nil {
		return err
	}
	err = harness.WaitFor("providerd", 30*time.Second, func() error {
		if ctx.Err() != nil {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := s.c.Health(cctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.logTail("providerd"))
	}
	harness.Step("catalogd on %s, providerd on %s (pid %d, root %s)", catAddr, s.provAddr, s.provPID, s.provRoot)
	return ctx.Err()
}

// logTail is the end of a daemon's log, for an error message.
func (s *soak) logTail(bin string) string {
	b, err := os.ReadFile(filepath.Join(s.work, bin+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return bin + " log:\n" + strings.Join(lines, "\n")
}

// findApps lists the seeded application images (those built on
// WindowsServerCore) and gives each client its images.
func (s *soak) findApps(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := s.c.Find(cctx, client.FindOptions{Name: "*"})
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	var apps []app
	for _, e := range res.Images {
		if !e.IsOSImage && e.Parent != nil && e.Parent.Name == "WindowsServerCore" {
			apps = append(apps, app{name: e.Name, version: e.Version, digest: e.Digest, source: e.Source})
		}
	}
	if len(apps) == 0 {
		return errors.New("find: the catalog has no application image on WindowsServerCore")
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].name < apps[j].name })
	s.nApps = len(apps)
	s.owned = make([][]app, s.cfg.clients)
	if s.cfg.clients <= len(apps) {
		for j, a := range apps {
			s.owned[j%s.cfg.clients] = append(s.owned[j%s.cfg.clients], a)
		}
	} else {
		s.shared = true
		for i := range s.owned {
			s.owned[i] = []app{apps[i%len(apps)]}
		}
	}
	harness.Step("%d application images on WindowsServerCore; images shared between clients: %v", len(apps), s.shared)
	return nil
}

// client runs rounds until the deadline. A round that has started runs to
// its end, within its calls' timeouts.
func (s *soak) client(ctx context.Context, i int) {
	for r := 0; ; r++ {
		if ctx.Err() != nil || time.Now().After(s.deadline) {
			return
		}
		s.gate.RLock()
		if time.Now().After(s.deadline) {
			s.gate.RUnlock()
			return
		}
		img := s.owned[i][r%len(s.owned[i])]
		ok := s.round(ctx, img)
		if ok {
			s.rounds.Add(1)
		}
		s.perCli[i].Add(1)
		s.gate.RUnlock()
		if !ok {
			// Do not spin on a failing daemon.
			time.Sleep(errorPause)
		}
	}
}

// watch ends the run when providerd exits (or is a zombie) before the end.
func (s *soak) watch(ctx context.Context, cancel context.CancelFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.provPID))
		// The state follows the command name in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); err != nil || (i >= 0 && i+2 < len(b) && b[i+2] == 'Z') {
			s.died.Store(true)
			cancel()
			return
		}
	}
}

// round installs img and removes it. It reports whether the round went
// without error (an expected refusal is not one).
func (s *soak) round(ctx context.Context, img app) bool {
	ictx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	req := api.InstallRequest{Name: img.name, VersionOptions: api.VersionOptions{RequiredVersion: img.version}, Source: img.source}
	job, err := s.c.Install(ictx, req)
	if err != nil {
		return s.failed(ctx, "install "+img.name, err, false)
	}
	job, err = s.waitJob(ictx, job, img)
	if err != nil {
		return s.failed(ctx, "install "+img.name, err, false)
	}
	if job.State != api.JobSucceeded {
		msg := job.State
		if job.Error != nil {
			msg += ": " + job.Error.Message
		}
		// Job messages may carry a job id or a size; keep their start.
		return s.failed(ctx, "install "+img.name, fmt.Errorf("job %s", firstWords(msg, 20)), false)
	}

	rctx, cancel2 := context.WithTimeout(ctx, removeTimeout)
	defer cancel2()
	if _, err := s.c.Remove(rctx, client.RemoveOptions{ID: img.digest}); err != nil {
		return s.failed(ctx, "remove "+img.name, err, s.shared)
	}
	return true
}

// waitJob follows a job to its end and returns it as it ended.
func (s *soak) waitJob(ctx context.Context, job api.Job, img app) (api.Job, error) {
	if finished(job.State) {
		return job, nil
	}
	st, err := s.c.Events(ctx, job.ID)
	if errors.Is(err, errdefs.ErrNotFound) {
		// A job that ended and was pruned before we attached: its image
		// tells how it went.
		imgs, ierr := s.c.Images(ctx, client.ImagesOptions{Name: img.name, VersionOptions: api.VersionOptions{RequiredVersion: img.version}})
		if ierr == nil && len(imgs) > 0 {
			job.State = api.JobSucceeded
			return job, nil
		}
		return job, fmt.Errorf("job %s is gone and its image is not installed: %w", job.ID, err)
	}
	if err != nil {
		return job, err
	}
	defer st.Close()
	for {
		ev, err := st.Next()
		if err != nil {
			return job, err
		}
		if ev.Type == api.EventResult && ev.Job != nil {
			return *ev.Job, nil
		}
	}
}

func finished(state string) bool {
	return state == api.JobSucceeded || state == api.JobFailed || state == api.JobCanceled
}

// failed counts err: not at all when the run is being interrupted, as
// expected when mayConflict and it is a 409 or a 404, as an error
// otherwise. It reports whether the round still counts as done: only an
// expected refusal does.
func (s *soak) failed(ctx context.Context, what string, err error, mayConflict bool) bool {
	if ctx.Err() != nil {
		return false
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		if mayConflict && (ce.StatusCode == http.StatusConflict || ce.StatusCode == http.StatusNotFound) {
			s.expected.add(fmt.Sprintf("%s: %d %s", what, ce.StatusCode, ce.API.Code))
			return true
		}
		s.errs.add(fmt.Sprintf("%s: %d %s: %s", what, ce.StatusCode, ce.API.Code, firstWords(ce.Error(), 20)))
		return false
	}
	s.errs.add(fmt.Sprintf("%s: %s", what, firstWords(err.Error(), 30)))
	return false
}

// firstWords keeps the first n words of msg, so that messages that differ
// only in their tails (ids, sizes) are counted together more often.
func firstWords(msg string, n int) string {
	f := strings.Fields(msg)
	if len(f) > n {
		f = append(f[:n], "...")
	}
	return strings.Join(f, " ")
}

// sampleLoop takes the start sample after warm-up, then one every
// interval, one at the reference point and the end sample. Each sample's
// RSS window closes at its point, where the clients are parked: for the
// end sample, at the deadline.
func (s *soak) sampleLoop(ctx context.Context, rep *report, clientsDone <-chan struct{}) {
	// Warm-up: every client has finished its first rounds.
	for {
		done := true
		for i := range s.perCli {
			if s.perCli[i].Load() < warmupRounds {
				done = false
			}
		}
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-clientsDone:
			// Too short a run for a warm-up: the end level only.
			rep.add(s.sample(ctx, "end", false))
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	first := s.sample(ctx, "start", true)
	rep.add(first)

	type point struct {
		at    time.Duration
		label string
	}
	var points []point
	for t := s.cfg.interval; t+rssWindow < s.cfg.duration; t += s.cfg.interval {
		points = append(points, point{t, ""})
	}
	if rep.refAt > first.at {
		// The reference joins a periodic sample within a second of it.
		i := slices.IndexFunc(points, func(p point) bool { return (p.at - rep.refAt).Abs() <= time.Second })
		if i >= 0 {
			points[i].label = "reference"
		} else {
			points = append(points, point{rep.refAt, "reference"})
		}
	} else {
		// Warm-up took longer than the reference point: the first sample
		// after it is the reference.
		rep.samples[len(rep.samples)-1].label = "start, reference"
		rep.refIndex = len(rep.samples) - 1
	}
	sort.Slice(points, func(i, j int) bool { return points[i].at < points[j].at })
	points = append(points, point{s.cfg.duration, "end"})
	for _, p := range points {
		if p.label == "" && p.at <= first.at {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(s.start.Add(p.at - rssWindow))):
		}
		if p.label == "reference" {
			rep.refIndex = len(rep.samples)
		}
		rep.add(s.sample(ctx, p.label, true))
	}
}

// sample reads providerd's figures. RSS is the median of readings over
// rssWindow while the clients run (when busy), so that it spans many
// garbage collection cycles rather than catching one at its peak or its
// trough. The other figures are read with the clients parked between two
// rounds, after providerd has had settleTime to close the connections
// that were closed.
func (s *soak) sample(ctx context.Context, label string, busy bool) sample {
	window := rssWindow
	if !busy {
		window = time.Second
	}
	var rss []float64
	for t := time.Now(); ; {
		if x, err := harness.RSS(s.provPID); err == nil {
			rss = append(rss, float64(x))
		}
		if time.Since(t) >= window || ctx.Err() != nil {
			break
		}
		time.Sleep(rssEvery)
	}

	s.gate.Lock()
	defer s.gate.Unlock()
	s.tr.CloseIdleConnections()
	time.Sleep(settleTime)
	sm := sample{label: label, at: time.Since(s.start), rss: -1}
	if len(rss) > 0 {
		sm.rss = int64(harness.MedianOf(rss))
	}
	sm.rounds, sm.errors, sm.expected = s.rounds.Load(), s.errs.n.Load(), s.expected.n.Load()
	var err error
	if sm.fds, err = harness.OpenFDs(s.provPID); err != nil {
		sm.fds = -1
	}
	if kinds, err := harness.FDKinds(s.provPID); err == nil {
		sm.sockets, sm.files = kinds["socket"], kinds["file"]
	}
	if sm.db, err = harness.FileSize(filepath.Join(s.provRoot, "provider.db")); err != nil {
		sm.db = -1
	}
	if sm.blobs, err = harness.CountFiles(filepath.Join(s.provRoot, "content", "blobs", "sha256", "*")); err != nil {
		sm.blobs = -1
	}
	sctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	if sm.jobs, sm.active, err = s.countJobs(sctx); err != nil {
		sm.jobs, sm.active = -1, -1
		if ctx.Err() == nil {
			s.errs.add("list jobs: " + firstWords(err.Error(), 20))
			sm.errors = s.errs.n.Load()
		}
	}
	s.tr.CloseIdleConnections()
	harness.Step("%-16s %7s  rounds %6d  errors %d  RSS %s  fds %d (%d sockets, %d files)  db %s  blobs %d  jobs %d",
		orDash(label), sm.at.Round(time.Second), sm.rounds, sm.errors, mib(sm.rss), sm.fds, sm.sockets, sm.files, mib(sm.db), sm.blobs, sm.jobs)
	return sm
}

// countJobs counts the jobs GET /v1/jobs lists, and those not finished,
// decoding the list one job at a time: it grows with every install until
// providerd prunes it, past what a client would read into memory at once.
func (s *soak) countJobs(ctx context.Context) (total, active int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.provAddr+"/v1/jobs", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, 0, fmt.Errorf("GET /v1/jobs: %s %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	dec := json.NewDecoder(resp.Body)
	if err := expectDelim(dec, '{'); err != nil {
		return 0, 0, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, err
		}
		if tok != "jobs" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0, 0, err
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return 0, 0, err
		}
		for dec.More() {
			var j struct {
				State string `json:"state"`
			}
			if err := dec.Decode(&j); err != nil {
				return 0, 0, err
			}
			total++
			if !finished(j.State) {
				active++
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return 0, 0, err
		}
	}
	return total, active, expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("GET /v1/jobs: %w", err)
	}
	if tok != d {
		return fmt.Errorf("GET /v1/jobs: want %q, got %v", d, tok)
	}
	return nil
}

// removeAll removes every installed image, children before their parents,
// and returns the errors.
func (s *soak) removeAll(ctx context.Context) []string {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// Wait for jobs still running (there should be none: each client
	// followed its jobs to their end).
	_ = harness.WaitFor("the last jobs", time.Minute, func() error {
		_, active, err := s.countJobs(cctx)
		if err == nil && active > 0 {
			err = fmt.Errorf("%d jobs not finished", active)
		}
		return err
	})
	var errs []string
	for pass := 0; pass < 10; pass++ {
		imgs, err := s.c.Images(cctx, client.ImagesOptions{})
		if err != nil {
			return append(errs, "list images: "+err.Error())
		}
		if len(imgs) == 0 {
			return errs
		}
		progress := false
		for _, img := range imgs {
			_, err := s.c.Remove(cctx, client.RemoveOptions{ID: img.Digest})
			switch {
			case err == nil:
				progress = true
			case errors.Is(err, errdefs.ErrConflict), errors.Is(err, errdefs.ErrNotFound):
				// A child not removed yet, or already gone.
			default:
				errs = append(errs, fmt.Sprintf("remove %s %s: %v", img.Name, img.Version, err))
			}
		}
		if !progress {
			break
		}
	}
	imgs, err := s.c.Images(cctx, client.ImagesOptions{})
	if err != nil {
		return append(errs, "list images: "+err.Error())
	}
	for _, img := range imgs {
		errs = append(errs, fmt.Sprintf("%s %s is still installed", img.Name, img.Version))
	}
	return errs
}

// report is what the soak found.
type report struct {
	cfg         config
	date        time.Time
	apps        int
	shared      bool
	refAt       time.Duration
	refIndex    int
	samples     []sample
	elapsed     time.Duration
	rounds      int64
	interrupted bool
	cleanupErrs []string
	ingests     int
	errMsgs     []string
	expMsgs     []string
}

func (r *report) add(s sample) { r.samples = append(r.samples, s) }

// end and ref are the samples compared: the end level (when the clients
// stopped) and the reference.
func (r *report) end() (sample, bool) {
	for i := len(r.samples) - 1; i >= 0; i-- {
		if r.samples[i].label == "end" {
			return r.samples[i], true
		}
	}
	return sample{}, false
}

func (r *report) ref() (sample, bool) {
	if len(r.samples) == 0 || !strings.Contains(r.samples[r.refIndex].label, "reference") {
		return sample{}, false
	}
	return r.samples[r.refIndex], true
}

func (r *report) final() (sample, bool) {
	if n := len(r.samples); n > 0 && r.samples[n-1].label == "all removed" {
		return r.samples[n-1], true
	}
	return sample{}, false
}

// check is one line of the verdict.
type check struct {
	what, ref, end, change, limit string
	ok                            bool
}

func (r *report) checks() []check {
	var cs []check
	ref, okRef := r.ref()
	end, okEnd := r.end()
	if okRef && okEnd {
		growth := func(what string, a, b int64, f func(int64) string) {
			c := check{what: what, ref: f(a), end: f(b), limit: fmt.Sprintf("+%.0f%%", limit*100)}
			if a > 0 && b >= 0 {
				c.change = fmt.Sprintf("%+.1f%%", (float64(b)/float64(a)-1)*100)
				c.ok = float64(b) <= float64(a)*(1+limit)
			} else {
				c.change = "n/a"
			}
			cs = append(cs, c)
		}
		growth("providerd RSS", ref.rss, end.rss, mib)
		growth("provider.db size", ref.db, end.db, mib)
		growth("open descriptors", int64(ref.fds), int64(end.fds), itoa)
	} else {
		cs = append(cs, check{what: "reference and end samples", ref: "-", end: "-", change: "missing", limit: "both"})
	}
	last := int64(0)
	if n := len(r.samples); n > 0 {
		last = r.samples[n-1].errors
	}
	cs = append(cs, check{what: "errors", ref: "-", end: itoa(last), change: "-", limit: "0", ok: last == 0})
	if f, ok := r.final(); ok {
		cs = append(cs, check{what: "blobs left with no image installed", ref: "-", end: itoa(int64(f.blobs)), change: "-", limit: "0", ok: f.blobs == 0})
		cs = append(cs, check{what: "cleanup errors", ref: "-", end: itoa(int64(len(r.cleanupErrs))), change: "-", limit: "0", ok: len(r.cleanupErrs) == 0})
	}
	return cs
}

func (r *report) passed() bool {
	for _, c := range r.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: install and remove churn (%s)\n\n", r.date.Format("2006-01-02"))
	ownership := "each client has application images of its own"
	if r.shared {
		ownership = "more clients than application images: clients share images, and a removal refused with 409 or 404 because another client holds or removed the image is counted as expected"
	}
	fmt.Fprintf(&b, "%d clients for %s against one providerd (API v1 with a bearer token, on 127.0.0.1) and a seeded catalogd. "+
		"Each round installs one of the %d seeded application images (start the job, follow it to its end) and removes it; "+
		"the images share their parent WindowsServerCore 10.0.14393.0, which the first installs bring in and which stays installed; %s. "+
		"Errors are failed install jobs, 5xx answers, transport errors, timeouts and any other refusal.\n\n",
		r.cfg.clients, r.cfg.duration, r.apps, ownership)
	fmt.Fprintf(&b, "Samples are taken after %d warm-up rounds of every client, every %s, at the reference point (%s: minute 2, or 20%% of the duration for shorter runs), "+
		"at the end of the run (the end level), and after every image, parents included, was removed. "+
		"RSS is VmRSS, the median of readings every %s over the %s before the sample, with the clients running; "+
		"the other figures are read with the clients parked between two rounds and the idle connections closed: "+
		"descriptors are the entries of /proc/<pid>/fd, blobs the committed blobs of the store, jobs what GET /v1/jobs lists "+
		"(each sample lists them, which is part of the load).\n\n",
		warmupRounds, r.cfg.interval, r.refAt, rssEvery, rssWindow)
	fmt.Fprintf(&b, "| sample | time | rounds | errors | expected refusals | RSS | descriptors | provider.db | blobs | jobs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.samples {
		jobs := itoa(int64(s.jobs))
		if s.jobs < 0 {
			jobs = "n/a"
		} else if s.active > 0 {
			jobs += fmt.Sprintf(" (%d running)", s.active)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s | %d (%d sockets, %d files) | %s | %d | %s |\n",
			orDash(s.label), s.at.Round(time.Second), s.rounds, s.errors, s.expected, mib(s.rss), s.fds, s.sockets, s.files, mib(s.db), s.blobs, jobs)
	}
	if r.elapsed > 0 {
		fmt.Fprintf(&b, "\n%d rounds in %s: %.1f rounds/s.\n", r.rounds, r.elapsed.Round(time.Second), float64(r.rounds)/r.elapsed.Seconds())
	}
	fmt.Fprintf(&b, "\n| check | reference | end | change | limit | result |\n|---|---:|---:|---:|---:|---|\n")
	for _, c := range r.checks() {
		res := "ok"
		if !c.ok {
			res = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.what, c.ref, c.end, c.change, c.limit, res)
	}
	if f, ok := r.final(); ok {
		fmt.Fprintf(&b, "\nAfter the clients stopped and every image (parents included) was removed: %d blobs left, %d ingests left, provider.db %s, %d jobs listed.\n",
			f.blobs, r.ingests, mib(f.db), f.jobs)
	}
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s:\n\n", title)
		for _, m := range items {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(m, "|", "\\|"))
		}
	}
	list("Errors", r.errMsgs)
	list("Expected refusals", r.expMsgs)
	list("Cleanup errors", r.cleanupErrs)
	if r.interrupted {
		fmt.Fprintf(&b, "\nResult: interrupted\n")
	} else if r.passed() {
		fmt.Fprintf(&b, "\nResult: **PASS**\n")
	} else {
		fmt.Fprintf(&b, "\nResult: **FAIL**\n")
	}
	return b.String()
}

func mib(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
