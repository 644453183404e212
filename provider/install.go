package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// JobKindInstall is the Kind of install jobs.
const JobKindInstall = "install"

// maxChain bounds the images of one install, the requested one and the
// parents it pulls, so that a source whose parents loop cannot make a job
// without end.
const maxChain = 16

// Install validates req and starts an install job, or returns the job
// already installing the same image. Bad input is refused before any job
// exists. The job runs until it ends, whatever happens to ctx.
//
// The image is resolved at once, with Find's rules (the latest version by
// default): a name that is empty or holds wildcards, or bad version
// options, are InvalidArgument; no match is NotFound with OneGet's text;
// several images of one name in different sources are InvalidArgument
// (name a Source). Then:
//   - an installed image without req.Force gives a job that has already
//     succeeded, whose Message says so and whose Result is the image;
//   - a job still installing the same image is returned as it is;
//   - missing parents join the job, parents first, unless req.NoParents:
//     a missing parent is then FailedPrecondition and names it, as is a
//     parent that its source does not have.
//
// The new job is persisted and started; it comes back queued or running.
func (p *Provider) Install(ctx context.Context, req api.InstallRequest) (api.Job, error) {
	if p.isClosing() {
		return api.Job{}, errClosed
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		return api.Job{}, fmt.Errorf("install: a name is required: %w", errdefs.ErrInvalidArgument)
	}
	if find.HasWildcard(req.Name) {
		return api.Job{}, fmt.Errorf("install %q: the name cannot hold wildcards: %w", req.Name, errdefs.ErrInvalidArgument)
	}
	fo := findOptions(req.Name, req.VersionOptions)
	if err := fo.Validate(); err != nil {
		return api.Job{}, err
	}
	found, idx, _, err := p.resolve(ctx, req.Source, fo)
	if err != nil {
		return api.Job{}, err
	}
	target, err := pickOne(found, req)
	if err != nil {
		return api.Job{}, err
	}
	catalog := mirrorOf(idx, target.Source)
	dgst, err := digest.Parse(target.Digest)
	if err != nil {
		return api.Job{}, fmt.Errorf("image %s %s of source %s: digest %q: %v: %w",
			target.Name, target.Version, target.Source, target.Digest, err, errdefs.ErrFailedPrecondition)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return api.Job{}, errClosed
	}
	if j := p.byTarget[dgst]; j != nil {
		return j.snapshot(), nil
	}
	var installed imageRecord
	var isInstalled bool
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		installed, isInstalled, err = getImage(tx, dgst)
		return err
	})
	if err != nil {
		return api.Job{}, err
	}
	if isInstalled && !req.Force {
		return p.noopJob(ctx, req, dgst, installed)
	}
	chain, err := p.buildChain(ctx, catalog, target, req.NoParents)
	if err != nil {
		return api.Job{}, err
	}
	rec := newJobRecord(req, dgst, chain)
	if err := p.saveJob(ctx, rec); err != nil {
		return api.Job{}, err
	}
	j := p.startJobLocked(rec)
	j.log.WithField("images", strings.Join(rec.Images, ", ")).Info("install job queued")
	return j.snapshot(), nil
}

// pickOne chooses the image to install among the entries Find kept. With
// AllVersions (or a range that keeps several versions of one image) the
// highest version wins; the same image in several sources is taken from
// the first; different images of one name are ambiguous.
func pickOne(found []api.FindEntry, req api.InstallRequest) (api.FindEntry, error) {
	switch len(found) {
	case 0:
		return api.FindEntry{}, find.NoMatch(req.Name, strings.TrimSpace(req.RequiredVersion))
	case 1:
		return found[0], nil
	}
	best := found[0]
	bestV, _ := goversion.NewVersion(best.Version)
	same := true
	for _, e := range found[1:] {
		if e.Source != best.Source || e.Repository != best.Repository || !strings.EqualFold(e.Name, best.Name) {
			same = false
		}
		v, err := goversion.NewVersion(e.Version)
		if err == nil && (bestV == nil || v.GreaterThan(bestV)) {
			best, bestV = e, v
		}
	}
	if same {
		return best, nil
	}
	sameDigest := true
	for _, e := range found[1:] {
		if e.Digest != found[0].Digest {
			sameDigest = false
		}
	}
	if sameDigest {
		return found[0], nil
	}
	var names []string
	for _, e := range found {
		names = append(names, fmt.Sprintf("%s %s (repository %s, source %s)", e.Name, e.Version, e.Repository, e.Source))
	}
	return api.FindEntry{}, fmt.Errorf("install %q: several images match: %s; choose a source or a version: %w",
		req.Name, strings.Join(names, "; "), errdefs.ErrInvalidArgument)
}

// buildChain lists the images to install for target, parents first: it
// walks the parents through the catalog of the target's source until one
// is installed or a base image is reached.
func (p *Provider) buildChain(ctx context.Context, catalog *mirror.Mirror, target api.FindEntry, noParents bool) ([]api.FindEntry, error) {
	chain := []api.FindEntry{target}
	seen := map[string]bool{target.Digest: true}
	cur := target
	for cur.Parent != nil {
		parent := *cur.Parent
		installed, err := p.parentInstalled(ctx, parent)
		if err != nil {
			return nil, err
		}
		if installed {
			break
		}
		label := strings.TrimSpace(parent.Name + " " + parent.Version)
		if noParents {
			return nil, fmt.Errorf("parent image %s is not installed: %w", label, errdefs.ErrFailedPrecondition)
		}
		pe, ok, err := lookupParent(ctx, catalog, parent)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("parent image %s of %s %s is not in source %s: %w",
				label, cur.Name, cur.Version, target.Source, errdefs.ErrFailedPrecondition)
		}
		if seen[pe.Digest] || len(chain) >= maxChain {
			return nil, fmt.Errorf("image %s %s: its parents loop or go deeper than %d images: %w",
				target.Name, target.Version, maxChain, errdefs.ErrFailedPrecondition)
		}
		seen[pe.Digest] = true
		chain = append(chain, pe)
		cur = pe
	}
	slices.Reverse(chain)
	return chain, nil
}

// parentInstalled reports whether the image parent names is installed: by
// digest when the parent has one, else by name and version; a key lookup
// either way.
func (p *Provider) parentInstalled(ctx context.Context, parent api.ParentRef) (bool, error) {
	found := false
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		if parent.Digest != "" {
			d, err := digest.Parse(parent.Digest)
			if err != nil {
				return nil // no installed image has a digest that does not parse
			}
			_, found, err = getImage(tx, d)
			return err
		}
		if find.HasWildcard(parent.Name) {
			return nil
		}
		recs, err := imagesNamed(tx, parent.Name)
		for i := range recs {
			if sameVersion(parent.Version, recs[i].Version) {
				found = true
			}
		}
		return err
	})
	return found, err
}

// mirrorOf is the mirror of the source name among idx.
func mirrorOf(idx []sourceIndex, name string) *mirror.Mirror {
	for _, si := range idx {
		if si.name == name {
			return si.mirror
		}
	}
	return nil
}

// lookupParent finds the image parent names in a source's mirror: by
// digest when the parent has one (a parent published again under the same
// version is another image), else by name and version, the highest version
// when it has none.
func lookupParent(ctx context.Context, m *mirror.Mirror, parent api.ParentRef) (api.FindEntry, bool, error) {
	if m == nil {
		return api.FindEntry{}, false, nil
	}
	if parent.Digest != "" {
		return m.WithDigest(ctx, parent.Digest)
	}
	if parent.Name == "" || find.HasWildcard(parent.Name) {
		return api.FindEntry{}, false, nil
	}
	candidates, err := m.Candidates(ctx, parent.Name)
	if err != nil {
		return api.FindEntry{}, false, err
	}
	kept, err := find.Filter(candidates, find.Options{Name: parent.Name, RequiredVersion: parent.Version})
	if err != nil || len(kept) == 0 {
		return api.FindEntry{}, false, nil
	}
	return kept[len(kept)-1], true, nil
}

// sameVersion compares versions numerically, or as text when one does not
// parse. An empty want matches any version.
func sameVersion(want, have string) bool {
	if want == "" {
		return true
	}
	a, errA := goversion.NewVersion(want)
	b, errB := goversion.NewVersion(have)
	if errA != nil || errB != nil {
		return want == have
	}
	return a.Equal(b)
}

// newJobID returns 16 random bytes in hex.
func newJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newJobRecord(req api.InstallRequest, target digest.Digest, chain []api.FindEntry) jobRecord {
	rec := jobRecord{
		Job: api.Job{
			ID:      newJobID(),
			Kind:    JobKindInstall,
			State:   api.JobQueued,
			Request: req,
			Started: time.Now().UTC(),
		},
		Target: target,
		Chain:  chain,
	}
	for _, e := range chain {
		rec.Images = append(rec.Images, e.Name+" "+e.Version)
	}
	return rec
}

// noopJob records and returns the job of an install that finds its image
// installed: it has succeeded already and changes nothing else.
func (p *Provider) noopJob(ctx context.Context, req api.InstallRequest, dgst digest.Digest, rec imageRecord) (api.Job, error) {
	var refs []string
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		refs = refsOf(tx, dgst)
		return nil
	})
	if err != nil {
		return api.Job{}, err
	}
	img := rec.image(refs)
	jr := newJobRecord(req, dgst, nil)
	jr.Images = []string{rec.label()}
	jr.State = api.JobSucceeded
	jr.Finished = jr.Started
	jr.Result = &img
	jr.Message = fmt.Sprintf("%s is already installed.", rec.label())
	if err := p.saveJob(ctx, jr); err != nil {
		return api.Job{}, err
	}
	p.jobEnded(jr.ID, jr.Finished)
	p.log.WithField("job_id", jr.ID).WithField("image", rec.label()).Info("install: already installed")
	return jr.Job, nil
}

// saveJob writes rec to v1/jobs.
func (p *Provider) saveJob(ctx context.Context, rec jobRecord) error {
	b, err := encodeJob(rec)
	if err != nil {
		return err
	}
	return p.db.Batch(ctx, func(tx *bolt.Tx) error { return putJob(tx, rec, b) })
}

// startJobLocked registers rec as an active job and runs it in the
// background. p.mu is held.
func (p *Provider) startJobLocked(rec jobRecord) *job {
	j := newJob(p, rec)
	p.active[rec.ID] = j
	if _, busy := p.byTarget[rec.Target]; !busy {
		p.byTarget[rec.Target] = j
	}
	p.running.Add(1)
	go j.run()
	return j
}

// resumeJobs starts again the jobs that a previous process left queued or
// running.
func (p *Provider) resumeJobs(ctx context.Context, heads []jobHead) error {
	var recs []jobRecord
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		for _, h := range heads {
			if !h.unfinished() {
				continue
			}
			r, ok, err := getJob(tx, h.ID)
			if err != nil {
				return err
			}
			if ok && r.unfinished() {
				recs = append(recs, r)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, b jobRecord) int { return a.Started.Compare(b.Started) })
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rec := range recs {
		j := p.startJobLocked(rec)
		j.log.Info("install job resumed")
	}
	return nil
}

// Jobs lists the jobs, newest first.
func (p *Provider) Jobs(ctx context.Context) ([]api.Job, error) {
	var recs []jobRecord
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		recs, err = listJobs(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	active := make(map[string]*job, len(p.active))
	for id, j := range p.active {
		active[id] = j
	}
	p.mu.Unlock()
	out := make([]api.Job, 0, len(recs))
	for _, r := range recs {
		if j, ok := active[r.ID]; ok {
			out = append(out, j.snapshot())
			continue
		}
		out = append(out, r.Job)
	}
	slices.SortFunc(out, func(a, b api.Job) int {
		if c := b.Started.Compare(a.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Job returns one job; NotFound if there is none by that id.
func (p *Provider) Job(ctx context.Context, id string) (api.Job, error) {
	if j := p.activeJob(id); j != nil {
		return j.snapshot(), nil
	}
	rec, err := p.jobRecord(ctx, id)
	if err != nil {
		return api.Job{}, err
	}
	return rec.Job, nil
}

func (p *Provider) activeJob(id string) *job {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active[id]
}

func (p *Provider) jobRecord(ctx context.Context, id string) (jobRecord, error) {
	var rec jobRecord
	var ok bool
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		rec, ok, err = getJob(tx, id)
		return err
	})
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, fmt.Errorf("no such job %q: %w", id, errdefs.ErrNotFound)
	}
	return rec, nil
}

// Watch streams a job's events: first a state event with the whole job,
// then progress, ending with a result event, after which the channel is
// closed. It is closed early when ctx ends; the job goes on.
//
// Progress events may be coalesced or dropped for a watcher that reads
// slowly; state, log and result events never are. A job that has ended
// gives its state and result events at once. A job stopped by Close ends
// its streams without a result event. NotFound if there is no such job.
func (p *Provider) Watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	if j := p.activeJob(id); j != nil {
		if ch, ok := j.watch(ctx); ok {
			return ch, nil
		}
	}
	rec, err := p.jobRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	return finishedEvents(rec.Job), nil
}

// finishedEvents is the whole stream of a job that has ended.
func finishedEvents(jb api.Job) <-chan api.JobEvent {
	ch := make(chan api.JobEvent, 2)
	now := time.Now().UTC()
	first := jb
	ch <- api.JobEvent{Type: api.EventState, JobID: jb.ID, Time: now, State: jb.State, Job: &first}
	if jb.State != api.JobQueued && jb.State != api.JobRunning {
		last := jb
		ch <- api.JobEvent{Type: api.EventResult, JobID: jb.ID, Time: now, State: jb.State, Message: jb.Message, Job: &last}
	}
	close(ch)
	return ch
}

// Cancel stops a job. Its downloaded data stays in the store's ingests for a
// later install to resume.
//
// Cancel waits for the job to stop (or for ctx to end) and returns it in
// state canceled, its leases released. A job that has already ended is
// returned as it is. NotFound if there is no such job.
func (p *Provider) Cancel(ctx context.Context, id string) (api.Job, error) {
	j := p.activeJob(id)
	if j == nil {
		rec, err := p.jobRecord(ctx, id)
		if err != nil {
			return api.Job{}, err
		}
		if rec.unfinished() && p.isClosing() {
			return rec.Job, errClosed
		}
		return rec.Job, nil
	}
	j.requestCancel()
	select {
	case <-j.done:
		return j.snapshot(), nil
	case <-ctx.Done():
		return j.snapshot(), ctx.Err()
	}
}
