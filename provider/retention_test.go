package provider

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/meta"
)

func TestRetentionExpire(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name     string
		maxAge   time.Duration
		maxCount int
		ends     map[string]time.Time
		want     []string
	}{
		{name: "within both", maxAge: time.Hour, maxCount: 3,
			ends: map[string]time.Time{"a": ago(time.Minute), "b": ago(2 * time.Minute)}},
		{name: "too old", maxAge: time.Hour, maxCount: 10,
			ends: map[string]time.Time{"a": ago(2 * time.Hour), "b": ago(time.Minute), "c": ago(61 * time.Minute)}, want: []string{"a", "c"}},
		{name: "too many, oldest first", maxAge: -1, maxCount: 2,
			ends: map[string]time.Time{"a": ago(3 * time.Hour), "b": ago(time.Minute), "c": ago(2 * time.Hour), "d": ago(time.Second)}, want: []string{"a", "c"}},
		{name: "both", maxAge: time.Hour, maxCount: 1,
			ends: map[string]time.Time{"a": ago(2 * time.Hour), "b": ago(time.Minute), "c": ago(2 * time.Minute)}, want: []string{"a", "c"}},
		{name: "no limit", maxAge: -1, maxCount: -1,
			ends: map[string]time.Time{"a": ago(1000 * time.Hour), "b": ago(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRetention(tt.maxAge, tt.maxCount)
			for id, end := range tt.ends {
				r.add(id, end)
			}
			got := r.expire(now)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("expired %q, want %q", got, tt.want)
			}
			if again := r.expire(now); len(again) != 0 {
				t.Errorf("expired twice: %q", again)
			}
		})
	}
	if r := newRetention(0, 0); r.maxAge != DefaultJobRetention || r.maxCount != DefaultJobRetentionCount {
		t.Errorf("defaults %v %d", r.maxAge, r.maxCount)
	}
}

// jobIDs lists the ids of the jobs in bbolt.
func (e *env) jobIDs() []string {
	e.t.Helper()
	jobs, err := e.p.Jobs(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

// TestFinishedJobsArePruned: install rounds leave at most the retained
// jobs, a pruned job is NotFound, and a running job is never pruned.
func TestFinishedJobsArePruned(t *testing.T) {
	e := newEnv(t, 4<<20, func(p *Provider) { p.retention = newRetention(-1, 3) })
	ctx := context.Background()
	first := e.install(nano10586())
	if first.State != api.JobSucceeded {
		t.Fatalf("install: %+v", first)
	}
	// A running install, slowed down, through every round below.
	e.cat.tap.setThrottle(20 * time.Millisecond)
	running, err := e.p.Install(ctx, api.InstallRequest{Name: "WindowsServerCore"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 10 {
		jb := e.install(nano10586()) // already installed: a job that ends at once
		ids = append(ids, jb.ID)
	}
	got := e.jobIDs()
	if len(got) != 4 || !slices.Contains(got, running.ID) {
		t.Fatalf("jobs %q: want the 3 newest finished ones and the running one", got)
	}
	for _, id := range ids[len(ids)-3:] {
		if !slices.Contains(got, id) {
			t.Errorf("job %s, among the newest, was pruned", id)
		}
	}
	for _, id := range append([]string{first.ID}, ids[:len(ids)-3]...) {
		_, err := e.p.Job(ctx, id)
		mustClass(t, err, errdefs.ErrNotFound)
		_, err = e.p.Watch(ctx, id)
		mustClass(t, err, errdefs.ErrNotFound)
	}
	if jb, err := e.p.Job(ctx, running.ID); err != nil || jb.State != api.JobRunning && jb.State != api.JobQueued {
		t.Errorf("the running job: %+v, %v", jb, err)
	}
	// By age: with a retention of a nanosecond, every job that has ended
	// goes at the next end, that one included.
	e.p.retention = newRetention(time.Nanosecond, -1)
	for _, id := range e.jobIDs() {
		if id != running.ID {
			e.p.retention.add(id, time.Now().Add(-time.Hour))
		}
	}
	if jb, err := e.p.Install(ctx, nano10586()); err != nil || jb.State != api.JobSucceeded {
		t.Fatalf("install: %+v, %v", jb, err)
	}
	if got := e.jobIDs(); !slices.Equal(got, []string{running.ID}) {
		t.Errorf("jobs %q after pruning by age, want the running one only", got)
	}
	e.cat.tap.stopThrottle()
	if _, err := e.p.Cancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionAtStart: New prunes what the limits no longer allow and
// deletes the leases that no unfinished job holds.
func TestRetentionAtStart(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.install(nano10586())
	for range 5 {
		e.install(nano10586())
	}
	if n := len(e.jobIDs()); n != 6 {
		t.Fatalf("%d jobs, want 6", n)
	}
	// A lease that a save left when its process died.
	if err := e.p.writeLease(ctx, "save-0123", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		b, err := meta.CreateJobLeasesBucket(tx, "load-4567")
		if err != nil {
			return err
		}
		return b.Put([]byte("sha256:"+strings.Repeat("a", 64)), []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	e.p = e.open(func(p *Provider) { p.retention = newRetention(-1, 2) })
	if n := len(e.jobIDs()); n != 2 {
		t.Errorf("%d jobs after a start with a count of 2", n)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases after a start: %q", l)
	}
	var buckets []string
	e.p.db.View(ctx, func(tx *bolt.Tx) error {
		return meta.GetLeasesBucket(tx).ForEach(func(k, _ []byte) error { buckets = append(buckets, string(k)); return nil })
	})
	if len(buckets) != 0 {
		t.Errorf("lease buckets after a start: %q", buckets)
	}
}

// TestInstallRoundsStayBounded: rounds of install and remove leave no
// state that grows: jobs, leases, ingests, flights, container locks,
// goroutines.
func TestInstallRoundsStayBounded(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, func(p *Provider) { p.retention = newRetention(-1, 5) })
	ctx := context.Background()
	round := func() {
		if jb := e.install(nano10586()); jb.State != api.JobSucceeded {
			t.Fatalf("install: %+v", jb)
		}
		if _, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"}); err != nil {
			t.Fatal(err)
		}
	}
	round()
	base := runtime.NumGoroutine()
	for range 20 {
		round()
	}
	if n := len(e.jobIDs()); n != 5 {
		t.Errorf("%d jobs after 21 rounds, want 5", n)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases: %q", l)
	}
	if st, _ := e.p.cs.ListStatuses(ctx); len(st) != 0 {
		t.Errorf("ingests: %+v", st)
	}
	e.p.mu.Lock()
	active, targets := len(e.p.active), len(e.p.byTarget)
	e.p.mu.Unlock()
	e.p.flightMu.Lock()
	flights := len(e.p.flights)
	e.p.flightMu.Unlock()
	if active+targets+flights != 0 {
		t.Errorf("active %d, by target %d, flights %d", active, targets, flights)
	}
	if n := len(e.p.retention.finished); n > 5 {
		t.Errorf("retention remembers %d jobs", n)
	}
	// Goroutines of idle HTTP connections come and go; a leak is one
	// per round.
	if n := runtime.NumGoroutine(); n > base+10 {
		t.Errorf("%d goroutines after 20 rounds, %d after the first", n, base)
	}
}
