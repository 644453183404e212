package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// Blob states of api.BlobProgress.
const (
	blobWaiting     = "waiting"
	blobDownloading = "downloading"
	blobRetrying    = "retrying"
	blobDone        = "done"
	blobPresent     = "present"
)

// persistInterval is how often, at most, a job's progress is written to
// bbolt. State changes are written at once.
const persistInterval = time.Second

// job is an install job that has not ended: its record, its context and its
// watchers.
type job struct {
	p      *Provider
	id     string
	target digest.Digest
	log    *logrus.Entry
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed when the job's goroutine has ended.
	done chan struct{}

	// persistMu orders the writes of the record, so that a later
	// snapshot is never overwritten by an earlier one.
	persistMu sync.Mutex

	mu       sync.Mutex
	rec      jobRecord
	blobIdx  map[string]int // index in rec.Blobs, by digest
	dirty    bool           // progress not yet written
	canceled bool           // Cancel was called
	ended    bool           // the last event was sent
	watchers map[*watcher]struct{}
}

func newJob(p *Provider, rec jobRecord) *job {
	ctx, cancel := context.WithCancel(p.jobCtx)
	log := p.log.WithField("job_id", rec.ID)
	if n := len(rec.Images); n > 0 {
		log = log.WithField("image", rec.Images[n-1])
	}
	return &job{
		p:        p,
		id:       rec.ID,
		target:   rec.Target,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		rec:      rec,
		blobIdx:  map[string]int{},
		watchers: map[*watcher]struct{}{},
	}
}

// copyJob is a deep copy of jb, safe to hand out.
func copyJob(jb api.Job) api.Job {
	jb.Images = slices.Clone(jb.Images)
	jb.Blobs = slices.Clone(jb.Blobs)
	if jb.Result != nil {
		r := *jb.Result
		r.Refs = slices.Clone(r.Refs)
		if r.ParentImage != nil {
			pr := *r.ParentImage
			r.ParentImage = &pr
		}
		jb.Result = &r
	}
	if jb.Error != nil {
		e := *jb.Error
		e.Dependents = slices.Clone(e.Dependents)
		jb.Error = &e
	}
	return jb
}

func (j *job) snapshot() api.Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	return copyJob(j.rec.Job)
}

func (j *job) requestCancel() {
	j.mu.Lock()
	j.canceled = true
	j.mu.Unlock()
	j.cancel()
}

// emitLocked sends ev to every watcher; j.mu is held.
func (j *job) emitLocked(ev api.JobEvent) {
	ev.JobID = j.id
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	for w := range j.watchers {
		w.push(ev)
	}
}

// watch registers a watcher whose first event is the whole job. ok is
// false when the job has already sent its last event.
func (j *job) watch(ctx context.Context) (<-chan api.JobEvent, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ended {
		return nil, false
	}
	w := newWatcher()
	jb := copyJob(j.rec.Job)
	w.push(api.JobEvent{Type: api.EventState, JobID: j.id, Time: time.Now().UTC(), State: jb.State, Job: &jb})
	j.watchers[w] = struct{}{}
	go w.pump(ctx, func() {
		j.mu.Lock()
		delete(j.watchers, w)
		j.mu.Unlock()
	})
	return w.out, true
}

// setState records a new state, tells the watchers, and writes the record.
func (j *job) setState(state string) {
	j.mu.Lock()
	j.rec.State = state
	jb := copyJob(j.rec.Job)
	j.emitLocked(api.JobEvent{Type: api.EventState, State: state, Job: &jb})
	j.mu.Unlock()
	j.persist()
}

// logEvent tells the watchers and the log a line for people.
func (j *job) logEvent(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	j.log.Info(msg)
	j.mu.Lock()
	j.emitLocked(api.JobEvent{Type: api.EventLog, Message: msg})
	j.mu.Unlock()
}

// setBlobs records the blobs the job downloads.
func (j *job) setBlobs(tasks []*blobTask) {
	j.mu.Lock()
	j.rec.Blobs = make([]api.BlobProgress, len(tasks))
	clear(j.blobIdx)
	for i, t := range tasks {
		j.rec.Blobs[i] = api.BlobProgress{
			Digest: t.desc.Digest.String(),
			Image:  t.img.label(),
			Kind:   t.kind,
			Total:  t.desc.Size,
			State:  blobWaiting,
		}
		j.blobIdx[t.desc.Digest.String()] = i
	}
	j.mu.Unlock()
	j.persist()
}

// blobError is the error of the download of t: it names the blob once,
// whether or not err (the source's error, say) names it already.
func blobError(t *blobTask, err error) error {
	d := t.desc.Digest.String()
	if strings.Contains(err.Error(), d) {
		return fmt.Errorf("%s of image %s: %w", t.kind, t.img.label(), err)
	}
	return fmt.Errorf("%s %s of image %s: %w", t.kind, d, t.img.label(), err)
}

// blobRetrying records that the download of t failed and is tried again:
// the blob's state is "retrying" with the attempt, the reason and the
// time of the next try, until the next attempt reports its bytes; a
// warning event says the same for people.
func (j *job) blobRetrying(t *blobTask, r blobRetry) {
	next := time.Now().Add(r.Delay)
	// The line names the blob first, by its short digest: a source's
	// error that names it again ("blob sha256:…: …") loses that part.
	reason := strings.ReplaceAll(api.ErrorMessage(r.Reason), "blob "+t.desc.Digest.String()+": ", "")
	msg := fmt.Sprintf("%s %s of image %s: attempt %d of %d in %s: %s",
		t.kind, shortDigest(t.desc.Digest), t.img.label(), r.Attempt, r.Attempts, r.Delay.Round(time.Millisecond), reason)
	// The download logs the retry, once for every job that waits on it.
	j.mu.Lock()
	defer j.mu.Unlock()
	if i, ok := j.blobIdx[t.desc.Digest.String()]; ok {
		b := &j.rec.Blobs[i]
		b.State = blobRetrying
		b.Retry = &api.BlobRetry{Attempt: r.Attempt, Attempts: r.Attempts, Reason: reason, Next: next}
		j.dirty = true
		bp := *b
		j.emitLocked(api.JobEvent{Type: api.EventProgress, Blob: &bp})
	}
	j.emitLocked(api.JobEvent{Type: api.EventWarning, Message: msg})
}

// shortDigest is the algorithm and the first 12 hex of d, as docker
// prints a layer.
func shortDigest(d digest.Digest) string {
	if enc := d.Encoded(); len(enc) > 12 {
		return string(d.Algorithm()) + ":" + enc[:12]
	}
	return d.String()
}

// setBlob records the progress of blob d: done bytes (unless negative) and
// state (unless empty). The record is written by the persist loop.
func (j *job) setBlob(d digest.Digest, done int64, state string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i, ok := j.blobIdx[d.String()]
	if !ok {
		return
	}
	b := &j.rec.Blobs[i]
	if done >= 0 {
		b.Done = done
	}
	switch {
	case state != "":
		b.State = state
	case b.State == blobRetrying && done >= 0:
		// The next attempt has begun.
		b.State = blobDownloading
	}
	if b.State == blobDone || b.State == blobPresent {
		b.Retry = nil
	}
	j.dirty = true
	bp := *b
	j.emitLocked(api.JobEvent{Type: api.EventProgress, Blob: &bp})
}

// persist writes the job's record. A failure is logged: the job goes on,
// and the next write catches up.
func (j *job) persist() {
	j.persistMu.Lock()
	defer j.persistMu.Unlock()
	j.mu.Lock()
	rec := j.rec
	rec.Job = copyJob(rec.Job)
	j.dirty = false
	j.mu.Unlock()
	b, err := encodeJob(rec)
	if err == nil {
		err = j.p.db.Batch(context.Background(), func(tx *bolt.Tx) error { return putJob(tx, rec, b) })
	}
	if err != nil {
		j.log.WithError(err).Warn("job record not written")
	}
}

// persistLoop writes the progress at most once per persistInterval until
// the returned stop is called.
func (j *job) persistLoop() (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(persistInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				j.mu.Lock()
				dirty := j.dirty
				j.mu.Unlock()
				if dirty {
					j.persist()
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// run is the job's goroutine.
func (j *job) run() {
	defer j.p.running.Done()
	defer close(j.done)
	defer j.cancel()
	stop := j.persistLoop()
	result, err := j.install()
	stop()
	j.finish(result, err)
}

// downloadedIn is the closing sentence of a successful install.
func downloadedIn(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("Downloaded in %s, %s, %s.", count(s/3600, "hour"), count(s%3600/60, "minute"), count(s%60, "second"))
}

// count is n and unit, plural unless n is 1: "0 hours", "1 second".
func count(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// finish records how the job ended, releases its leases, sends the result
// event and forgets the job. A job stopped by Close is left as it is in
// bbolt, leases included, for the next New to resume.
func (j *job) finish(result *api.Image, err error) {
	p := j.p
	j.mu.Lock()
	canceled := j.canceled
	j.mu.Unlock()

	if err != nil && !canceled && p.isClosing() {
		j.log.Info("install job stopped by shutdown; it resumes at the next start")
		j.persist()
		j.mu.Lock()
		j.ended = true
		for w := range j.watchers {
			w.end()
		}
		j.mu.Unlock()
		p.forget(j)
		return
	}

	if lerr := p.db.Batch(context.Background(), func(tx *bolt.Tx) error {
		return meta.DeleteJobLeasesBucket(tx, j.id)
	}); lerr != nil {
		j.log.WithError(lerr).Warn("leases not released")
	}

	now := time.Now().UTC()
	j.mu.Lock()
	j.rec.Finished = now
	switch {
	case err == nil:
		j.rec.State = api.JobSucceeded
		j.rec.Result = result
		j.rec.Message = downloadedIn(now.Sub(j.rec.Started))
		j.log.Info(j.rec.Message)
	case canceled:
		j.rec.State = api.JobCanceled
		j.rec.Message = "The install was canceled; the data downloaded so far is kept for a later install."
		j.log.Info("install job canceled")
	default:
		j.rec.State = api.JobFailed
		e := api.NewError(err)
		j.rec.Error = &e
		j.log.WithError(err).Error("install job failed")
	}
	state, started := j.rec.State, j.rec.Started
	j.mu.Unlock()

	j.persist()
	p.abortJobIngests(context.Background(), j.id)
	p.jobEnded(j.id, now)
	p.metrics.jobEnded(state, now.Sub(started))
	// Forget the job before its result goes out, so that whoever sees the
	// result finds the job ended everywhere: in Install, Job and metrics.
	p.forget(j)

	j.mu.Lock()
	jb := copyJob(j.rec.Job)
	j.emitLocked(api.JobEvent{Type: api.EventResult, State: jb.State, Message: jb.Message, Job: &jb})
	j.ended = true
	for w := range j.watchers {
		w.end()
	}
	j.mu.Unlock()
}

// forget removes j from the active jobs.
func (p *Provider) forget(j *job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.active, j.id)
	if p.byTarget[j.target] == j {
		delete(p.byTarget, j.target)
	}
}

// blobTask is one blob a job needs, shared by the images of its chain that
// reference it.
type blobTask struct {
	desc ocispec.Descriptor
	// img is the first image of the chain that needs the blob; kind is
	// "config" or "layer". Errors name both.
	img     *pendingImage
	kind    string
	present bool
	// done is closed when the blob is committed.
	done chan struct{}
}

// planBlobs lists the config and layers of every image, parents first,
// each digest once.
func planBlobs(imgs []*pendingImage) ([]*blobTask, map[digest.Digest]*blobTask) {
	var tasks []*blobTask
	byDigest := map[digest.Digest]*blobTask{}
	add := func(img *pendingImage, kind string, d ocispec.Descriptor) {
		if _, ok := byDigest[d.Digest]; ok {
			return
		}
		t := &blobTask{desc: d, img: img, kind: kind, done: make(chan struct{})}
		byDigest[d.Digest] = t
		tasks = append(tasks, t)
	}
	for _, img := range imgs {
		add(img, "config", img.config)
		for _, l := range img.layers {
			add(img, "layer", l)
		}
	}
	return tasks, byDigest
}

// install runs the steps of the job and returns the installed image.
func (j *job) install() (*api.Image, error) {
	ctx := j.ctx
	chain := j.rec.Chain
	if len(chain) == 0 {
		return nil, fmt.Errorf("job %s: no image to install", j.id)
	}
	j.setState(api.JobRunning)

	// 1. The manifests, parents first.
	imgs := make([]*pendingImage, 0, len(chain))
	for i, e := range chain {
		if i < len(chain)-1 {
			j.logEvent("Installing parent image %s %s", e.Name, e.Version)
		}
		img, err := j.p.fetchImage(ctx, e)
		if err != nil {
			return nil, j.ctxErr(err)
		}
		// The source's signature policy, before any byte of a layer.
		if err := j.p.checkSignature(ctx, img); err != nil {
			return nil, j.ctxErr(err)
		}
		if img.index != nil {
			j.logEvent("Image %s %s is an index: installing its manifest %s for %s (this host: %s)",
				e.Name, e.Version, img.manifest.Digest, platformString(img.platform), platformString(&j.p.platform))
		}
		imgs = append(imgs, img)
	}
	if err := j.p.checkInstalledParent(ctx, imgs[0]); err != nil {
		return nil, j.ctxErr(err)
	}
	tasks, byDigest := planBlobs(imgs)
	j.setBlobs(tasks)

	// 2. Leases on everything the job will reference, before any write.
	if err := j.lease(ctx, imgs, tasks); err != nil {
		return nil, j.ctxErr(err)
	}
	// 3. What is there already, and whether the rest fits on the disk.
	if err := j.checkPresent(ctx, imgs, tasks); err != nil {
		return nil, j.ctxErr(err)
	}
	if err := j.preflight(ctx, imgs, tasks); err != nil {
		return nil, err
	}
	for _, img := range imgs {
		if err := j.p.writeManifests(ctx, j.id, img); err != nil {
			return nil, j.ctxErr(err)
		}
	}
	// 4 and 5. The blobs, then each image's record once its blobs are in.
	return j.downloadAndRecord(ctx, imgs, tasks, byDigest)
}

// ctxErr prefers the job's own context error to err, so that a stopped job
// is not reported as a failure of whatever call the stop interrupted.
func (j *job) ctxErr(err error) error {
	if cerr := j.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// lease writes, in one transaction, a lease for every blob the job will
// reference, so that garbage collection keeps them until the job ends.
func (j *job) lease(ctx context.Context, imgs []*pendingImage, tasks []*blobTask) error {
	var digests []digest.Digest
	for _, img := range imgs {
		digests = append(digests, img.manifest.Digest)
		if img.index != nil {
			digests = append(digests, img.index.Digest)
		}
	}
	for _, t := range tasks {
		digests = append(digests, t.desc.Digest)
	}
	for _, img := range imgs {
		if c := img.sigs; c != nil {
			for _, b := range c.blobs() {
				digests = append(digests, b.desc.Digest)
			}
		}
	}
	return j.p.writeLease(ctx, j.id, digests)
}

// checkPresent marks the blobs already committed. With Force every
// committed blob of the job (manifests included) is hashed again, and one
// that does not match its descriptor is deleted, to be downloaded again.
func (j *job) checkPresent(ctx context.Context, imgs []*pendingImage, tasks []*blobTask) error {
	force := j.rec.Request.Force
	check := func(desc ocispec.Descriptor) (bool, error) {
		info, err := j.p.cs.Info(ctx, desc.Digest)
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		ok := info.Size == desc.Size
		if ok && force {
			if ok, err = j.p.verifyBlob(ctx, desc); err != nil {
				return false, err
			}
		}
		if ok {
			return true, nil
		}
		j.log.WithField("digest", desc.Digest).Warn("committed blob does not match its digest: downloading it again")
		if err := j.p.cs.Delete(ctx, desc.Digest); err != nil && !errdefs.IsNotFound(err) {
			return false, err
		}
		return false, nil
	}
	if force {
		for _, img := range imgs {
			for _, d := range img.manifestBlobs() {
				if _, err := check(d); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range tasks {
		ok, err := check(t.desc)
		if err != nil {
			return err
		}
		t.present = ok
	}
	return nil
}

// verifyBlob hashes the committed blob desc and compares it with desc.
func (p *Provider) verifyBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ra, err := p.cs.ReaderAt(ctx, desc.Digest)
	if err != nil {
		return false, err
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return false, nil
	}
	v := desc.Digest.Verifier()
	buf := p.buffer()
	defer p.releaseBuffer(buf)
	sr := content.NewSectionReader(ra)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		n, rerr := sr.Read(*buf)
		_, _ = v.Write((*buf)[:n])
		if errors.Is(rerr, io.EOF) {
			return v.Verified(), nil
		}
		if rerr != nil {
			return false, fmt.Errorf("blob %s: %w", desc.Digest, rerr)
		}
	}
}

// preflight refuses the job, before it writes any blob, when the bytes it
// still has to download (less what the ingests already hold) and the
// margin do not fit in the free space of the root's filesystem.
func (j *job) preflight(ctx context.Context, imgs []*pendingImage, tasks []*blobTask) error {
	p := j.p
	var missing int64
	for _, t := range tasks {
		if t.present {
			continue
		}
		left := t.desc.Size
		if st, err := p.cs.Status(ctx, blobRef(t.desc.Digest)); err == nil {
			left -= min(st.Offset, t.desc.Size)
		}
		missing += left
	}
	for _, img := range imgs {
		for _, d := range img.manifestBlobs() {
			if _, err := p.cs.Info(ctx, d.Digest); err != nil {
				missing += d.Size
			}
		}
	}
	need := missing + p.diskMargin
	free, err := p.freeSpace(p.root)
	if err != nil {
		j.log.WithError(err).Warn("free disk space unknown: the install goes on without the check")
		return nil
	}
	if need > 0 && uint64(need) > free {
		return fmt.Errorf("Not enough space on %s: %s needed, %s free: %w",
			p.root, formatBytes(uint64(need)), formatBytes(free), errdefs.ErrInsufficientStorage)
	}
	return nil
}

// formatBytes writes n in binary units, e.g. "1.5 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// writeManifests stores the manifest bytes of img (and its index's) as
// blobs. The ingest refs name the job, so that two jobs that install the
// same image do not contend for one ref; a resumed job reuses its own.
func (p *Provider) writeManifests(ctx context.Context, jobID string, img *pendingImage) error {
	write := func(desc ocispec.Descriptor, b []byte) error {
		ref := "manifest-" + desc.Digest.String() + "-" + jobID
		_, err := content.WriteBlob(ctx, p.cs, ref, bytes.NewReader(b), desc.Size, desc.Digest)
		if err != nil {
			return fmt.Errorf("image %s: manifest %s: %w", img.label(), desc.Digest, err)
		}
		return nil
	}
	if img.index != nil {
		if err := write(*img.index, img.indexBytes); err != nil {
			return err
		}
	}
	if c := img.sigs; c != nil {
		for _, b := range c.blobs() {
			if err := write(b.desc, b.data); err != nil {
				return err
			}
		}
	}
	return write(img.manifest, img.manifestBytes)
}

// downloadAndRecord downloads the missing blobs, at most p.parallelism at
// once, and writes the record of each image, parents first, as soon as all
// its blobs are committed. The first error stops the rest.
func (j *job) downloadAndRecord(ctx context.Context, imgs []*pendingImage, tasks []*blobTask, byDigest map[digest.Digest]*blobTask) (*api.Image, error) {
	p := j.p
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() {
			firstErr = err
			dcancel()
		})
	}
	sem := make(chan struct{}, p.parallelism)
	var wg sync.WaitGroup
	for _, t := range tasks {
		d := t.desc.Digest
		if t.present {
			j.setBlob(d, t.desc.Size, blobPresent)
			close(t.done)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-dctx.Done():
				return
			}
			defer func() { <-sem }()
			j.setBlob(d, -1, blobDownloading)
			err := p.fetchBlob(dctx, t.img.src, t.img.entry.Repository, t.desc, flightListener{
				progress: func(done int64) { j.setBlob(d, done, "") },
				retry:    func(r blobRetry) { j.blobRetrying(t, r) },
			})
			if err != nil {
				if dctx.Err() != nil && errors.Is(err, context.Canceled) {
					return
				}
				fail(blobError(t, err))
				return
			}
			j.setBlob(d, t.desc.Size, blobDone)
			close(t.done)
		}()
	}

	var result *api.Image
	var recErr error
images:
	for i, img := range imgs {
		for _, desc := range img.blobs() {
			select {
			case <-byDigest[desc.Digest].done:
			case <-dctx.Done():
				break images
			}
		}
		rec, err := p.recordImage(dctx, img)
		if err != nil {
			recErr = err
			fail(err)
			break
		}
		j.logEvent("Installed %s", img.label())
		if i == len(imgs)-1 {
			result = &rec
		}
	}
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case firstErr != nil:
		return nil, firstErr
	case recErr != nil:
		return nil, recErr
	case result == nil:
		return nil, fmt.Errorf("job %s: stopped before its last image", j.id)
	}
	return result, nil
}

// recordImage writes img's record and its ref in one transaction, after
// checking that every blob it references is committed, and returns the
// image as Get shows it.
func (p *Provider) recordImage(ctx context.Context, img *pendingImage) (api.Image, error) {
	rec := img.record(time.Now().UTC())
	for _, d := range rec.blobs() {
		if _, err := p.cs.Info(ctx, d.Digest); err != nil {
			return api.Image{}, fmt.Errorf("image %s: blob %s is not committed: %w", img.label(), d.Digest, err)
		}
	}
	var refs []string
	err := p.db.Batch(ctx, func(tx *bolt.Tx) error {
		if rec.Parent != nil && rec.Parent.Digest != "" {
			if parent, ok, err := getImage(tx, digest.Digest(rec.Parent.Digest)); err != nil {
				return err
			} else if ok {
				if rec.Parent.Publisher == "" {
					rec.Parent.Publisher = parent.Publisher
				}
				if rec.Parent.Version == "" {
					rec.Parent.Version = parent.Version
				}
			}
		}
		if err := putImage(tx, rec); err != nil {
			return err
		}
		refs = refsOf(tx, rec.Digest)
		return nil
	})
	if err != nil {
		return api.Image{}, fmt.Errorf("image %s: record: %w", img.label(), err)
	}
	return rec.image(refs), nil
}
