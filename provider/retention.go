package provider

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/store/meta"
)

// The defaults of Config.JobRetention and Config.JobRetentionCount.
const (
	DefaultJobRetention      = 24 * time.Hour
	DefaultJobRetentionCount = 1000
)

// retention keeps the finished jobs of v1/jobs within an age and a count,
// as dockerd bounds its events: the oldest go first. It knows the finished
// jobs by the time they ended, so that a prune costs what it deletes, not a
// scan of the bucket. It is safe for concurrent use.
type retention struct {
	maxAge   time.Duration // < 0: no age limit
	maxCount int           // < 0: no count limit

	mu       sync.Mutex
	finished []finishedJob // oldest first
}

// finishedJob is a job that has reached a final state.
type finishedJob struct {
	id  string
	end time.Time
}

// newRetention applies the defaults to the settings of Config: zero takes
// the default, a negative value lifts the limit.
func newRetention(maxAge time.Duration, maxCount int) *retention {
	if maxAge == 0 {
		maxAge = DefaultJobRetention
	}
	if maxCount == 0 {
		maxCount = DefaultJobRetentionCount
	}
	return &retention{maxAge: maxAge, maxCount: maxCount}
}

// add counts a job that ended at end.
func (r *retention) add(id string, end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.finished)
	for i > 0 && r.finished[i-1].end.After(end) {
		i--
	}
	r.finished = slices.Insert(r.finished, i, finishedJob{id: id, end: end})
}

// load adds jobs to the count at once, sorted by their end once rather
// than inserted one by one: a start may count many thousands.
func (r *retention) load(jobs []finishedJob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, jobs...)
	slices.SortStableFunc(r.finished, func(a, b finishedJob) int { return a.end.Compare(b.end) })
}

// expire removes from the count, and returns, the jobs that are over the
// limits at now: those that ended before now-maxAge, then the oldest of
// those beyond maxCount.
func (r *retention) expire(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	if r.maxAge >= 0 {
		cutoff := now.Add(-r.maxAge)
		for n < len(r.finished) && r.finished[n].end.Before(cutoff) {
			n++
		}
	}
	if r.maxCount >= 0 {
		n = max(n, len(r.finished)-r.maxCount)
	}
	if n == 0 {
		return nil
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = r.finished[i].id
	}
	r.finished = slices.Delete(r.finished, 0, n)
	return ids
}

// jobEnded counts a finished job and prunes the jobs that it takes over
// the limits. A failure is logged: the next prune catches up.
func (p *Provider) jobEnded(id string, end time.Time) {
	p.retention.add(id, end)
	p.pruneJobs(context.Background())
}

// pruneJobs deletes the records of the finished jobs over the limits of
// retention, in one transaction. Running and queued jobs are not counted
// by retention, so they are never pruned.
func (p *Provider) pruneJobs(ctx context.Context) {
	ids := p.retention.expire(time.Now().UTC())
	if len(ids) == 0 {
		return
	}
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			if err := deleteJob(tx, id); err != nil {
				return err
			}
			if err := meta.DeleteJobLeasesBucket(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		p.log.WithError(err).WithField("jobs", len(ids)).Warn("finished jobs not pruned")
		return
	}
	p.log.WithField("jobs", len(ids)).Debug("finished jobs pruned")
}

// startRetention runs at New, before any job resumes: it counts the
// finished jobs of the database, prunes those over the limits, and deletes
// the leases that no unfinished job holds (left by a process that stopped
// before it released them: a save, a load or a commit in progress, or a
// job whose end was recorded but not its release).
func (p *Provider) startRetention(ctx context.Context, recs []jobHead) error {
	unfinished := map[string]bool{}
	finished := make([]finishedJob, 0, len(recs))
	for _, r := range recs {
		if r.unfinished() {
			unfinished[r.ID] = true
			continue
		}
		end := r.Finished
		if end.IsZero() {
			end = r.Started
		}
		finished = append(finished, finishedJob{id: r.ID, end: end})
	}
	p.retention.load(finished)
	p.pruneJobs(ctx)
	return p.db.Update(ctx, func(tx *bolt.Tx) error {
		leases := meta.GetLeasesBucket(tx)
		if leases == nil {
			return nil
		}
		var stale []string
		err := leases.ForEach(func(k, _ []byte) error {
			if !unfinished[string(k)] {
				stale = append(stale, string(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range stale {
			if err := meta.DeleteJobLeasesBucket(tx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// abortJobIngests discards the ingests of manifests that job id wrote and
// did not commit: their refs name the job, so no later job resumes them.
// Blob ingests are kept, for a later install to resume.
func (p *Provider) abortJobIngests(ctx context.Context, id string) {
	sts, err := p.cs.ListStatuses(ctx)
	if err != nil {
		p.log.WithError(err).WithField("job_id", id).Warn("ingests of the job not listed")
		return
	}
	for _, st := range sts {
		if strings.HasPrefix(st.Ref, "manifest-") && strings.HasSuffix(st.Ref, "-"+id) {
			if err := p.cs.Abort(ctx, st.Ref); err != nil {
				p.log.WithError(err).WithField("ref", st.Ref).Warn("ingest of a finished job not removed")
			}
		}
	}
}
