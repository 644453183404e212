package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// How the mirrors of the sources are kept in sync.
const (
	// DefaultFeedInterval is how often a source with catalogd's change
	// feed is read in the background; a Find reads it too when the
	// mirror is older than feedFreshness.
	DefaultFeedInterval = 10 * time.Second
	// DefaultCrawlInterval is how often a plain registry is crawled again
	// after a pass has ended.
	DefaultCrawlInterval = 5 * time.Minute
	// feedFreshness is the age beyond which a Find catches the mirror of
	// a feed up first, within feedCatchUpWait.
	feedFreshness   = time.Second
	feedCatchUpWait = 2 * time.Second
	// defaultFirstSyncWait is how long a Find waits for the first sync of
	// a mirror that is not complete yet before answering from what it
	// holds, with a warning.
	defaultFirstSyncWait = 5 * time.Second
	// retryInterval is the wait after a failed sync.
	retryInterval = 30 * time.Second
)

// syncer keeps the mirror of one source in sync, in the background.
type syncer struct {
	name   string
	src    Source
	mirror *mirror.Mirror
	// kick asks the loop for a sync now.
	kick chan struct{}
	// first is closed when the first sync of this process has ended,
	// well or not.
	first     chan struct{}
	firstOnce sync.Once
	// stop ends the loop; done is closed when it has.
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	syncing bool
}

// syncer returns the syncer of the source name, started if it was not.
func (p *Provider) syncer(ctx context.Context, name string) (*syncer, error) {
	p.mu.Lock()
	s, ok := p.syncers[name]
	p.mu.Unlock()
	if ok {
		return s, nil
	}
	src, err := p.source(ctx, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.syncers[name]; ok {
		return s, nil
	}
	if p.closed {
		return nil, errClosed
	}
	loopCtx, stop := context.WithCancel(p.jobCtx)
	s = &syncer{
		name:   name,
		src:    src,
		mirror: mirror.New(p.db, name),
		kick:   make(chan struct{}, 1),
		first:  make(chan struct{}),
		stop:   stop,
		done:   make(chan struct{}),
	}
	p.syncers[name] = s
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		p.runSyncer(loopCtx, s)
	}()
	return s, nil
}

// startSyncers starts the syncer of every source.
func (p *Provider) startSyncers(ctx context.Context) error {
	settings, err := p.sourceSettings(ctx)
	if err != nil {
		return err
	}
	for _, s := range settings {
		if _, err := p.syncer(ctx, s.Name); err != nil {
			p.log.WithField("source", s.Name).WithError(err).Warn("the source's mirror is not synced")
		}
	}
	return nil
}

// stopSyncer stops the syncer of name, if any, and waits for it; it
// reports whether there was one.
func (p *Provider) stopSyncer(name string) bool {
	p.mu.Lock()
	s, ok := p.syncers[name]
	delete(p.syncers, name)
	p.mu.Unlock()
	if ok {
		s.stop()
		<-s.done
	}
	return ok
}

// runSyncer syncs s now, then again at the interval of its mode, when
// kicked, or after retryInterval when a sync failed, until ctx ends.
func (p *Provider) runSyncer(ctx context.Context, s *syncer) {
	defer close(s.done)
	defer s.firstOnce.Do(func() { close(s.first) })
	log := p.log.WithField("source", s.name)
	for {
		err := s.sync(ctx)
		s.firstOnce.Do(func() { close(s.first) })
		if ctx.Err() != nil {
			return
		}
		wait := p.crawlInterval
		st, n, serr := s.mirror.State(ctx)
		switch {
		case err != nil:
			log.WithError(err).Warn("the sync of the source's mirror failed")
			wait = min(wait, retryInterval)
		case serr != nil:
			log.WithError(serr).Warn("the state of the source's mirror cannot be read")
		default:
			log.WithFields(map[string]any{"mode": st.Mode, "entries": n}).Debug("the source's mirror is in sync")
			if st.Mode == mirror.ModeFeed {
				wait = p.feedInterval
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// sync runs one sync of the source into its mirror.
func (s *syncer) sync(ctx context.Context) error {
	s.mu.Lock()
	s.syncing = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.syncing = false
		s.mu.Unlock()
	}()
	return s.src.Sync(ctx, s.mirror)
}

func (s *syncer) isSyncing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncing
}

// sourceIndex is what one source's mirror answers for a Find: the
// candidates of a name, and the warning that says the mirror is not a
// whole and current copy of the source.
type sourceIndex struct {
	name    string
	mirror  *mirror.Mirror
	entries []api.FindEntry
	warning string
}

// indexes reads the candidates of name in the mirror of every source (or
// of only), in the order of the source names. Before reading, a mirror
// that is not complete waits for its first sync (at most firstSyncWait)
// and a complete mirror of a change feed older than feedFreshness catches
// up (at most feedCatchUpWait), so that what catalogd published a moment
// ago is found. A source whose mirror holds nothing and
// whose sync failed is logged and left out, unless every one is: the error
// is then Unavailable and names them. An unknown only is NotFound.
func (p *Provider) indexes(ctx context.Context, only, name string) ([]sourceIndex, []string, error) {
	settings, err := p.sourceSettings(ctx)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, s := range settings {
		if only == "" || s.Name == only {
			names = append(names, s.Name)
		}
	}
	if only != "" && len(names) == 0 {
		return nil, nil, fmt.Errorf("no such source %q: %w", only, errdefs.ErrNotFound)
	}
	out := make([]sourceIndex, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { out[i], errs[i] = p.index(ctx, n, name) })
	}
	wg.Wait()
	var ok []sourceIndex
	var failed, skipped []string
	for i, n := range names {
		if errs[i] != nil {
			p.log.WithField("source", n).WithError(errs[i]).Warn("source skipped: its index cannot be read")
			failed = append(failed, fmt.Sprintf("%s (%v)", n, errs[i]))
			why := strings.TrimPrefix(api.ErrorMessage(errs[i]), "source "+n+": ")
			skipped = append(skipped, fmt.Sprintf("source %s was skipped: its index cannot be read: %s", n, why))
			continue
		}
		if out[i].warning != "" {
			p.log.WithField("source", n).Warn(out[i].warning)
		}
		ok = append(ok, out[i])
	}
	if len(ok) == 0 && len(failed) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("no source answered: %s: %w", strings.Join(failed, "; "), errdefs.ErrUnavailable)
	}
	return ok, skipped, nil
}

// index reads the candidates of name in the mirror of the source src (see
// indexes).
func (p *Provider) index(ctx context.Context, src, name string) (sourceIndex, error) {
	s, err := p.syncer(ctx, src)
	if err != nil {
		return sourceIndex{}, err
	}
	st, n, err := s.mirror.State(ctx)
	if err != nil {
		return sourceIndex{}, err
	}
	switch {
	case !st.Complete:
		t := time.NewTimer(p.firstSyncWait)
		select {
		case <-s.first:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return sourceIndex{}, ctx.Err()
		}
		t.Stop()
	case st.Mode == mirror.ModeFeed && time.Since(st.LastSync) > feedFreshness &&
		(st.LastError == "" || time.Since(st.LastErrorAt) > retryInterval):
		// A source that failed a moment ago is not asked again at each
		// Find: the answer comes from the mirror, said to be stale.
		cctx, cancel := context.WithTimeout(ctx, feedCatchUpWait)
		err := s.src.Lookup(cctx, s.mirror, "")
		cancel()
		if err != nil && ctx.Err() == nil {
			p.log.WithField("source", src).WithError(err).Debug("answering from the mirror: the feed did not answer")
		}
	}
	if st, n, err = s.mirror.State(ctx); err != nil {
		return sourceIndex{}, err
	}
	if n == 0 && !st.Complete && st.LastError != "" {
		return sourceIndex{}, errors.New(st.LastError)
	}
	entries, err := s.mirror.Candidates(ctx, name)
	if err != nil {
		return sourceIndex{}, err
	}
	return sourceIndex{name: src, mirror: s.mirror, entries: entries, warning: mirrorWarning(src, st, n)}, nil
}

// mirrorWarning says how the mirror of src falls short of the source, or
// is "" when it is a whole copy as of its last sync.
func mirrorWarning(src string, st mirror.State, n int) string {
	// The warning names the source first; the error need not again.
	st.LastError = strings.TrimPrefix(st.LastError, "source "+src+": ")
	if st.Origin != "" {
		// Whatever else holds, the user must know whose answer this is.
		w := fmt.Sprintf("source %s: its location is unreachable; the entries come from its mirror %s", src, st.Origin)
		if !st.Complete {
			w += fmt.Sprintf(", whose index is incomplete (%d entries so far)", n)
		}
		return w
	}
	switch {
	case !st.Complete && st.Mode == mirror.ModeCrawl && st.Listed > 0:
		return fmt.Sprintf("source %s: the index is incomplete: its first sync has read %d of the %d repositories listed so far; images may be missing", src, st.Crawled, st.Listed)
	case !st.Complete && st.LastError != "":
		return fmt.Sprintf("source %s: the index is incomplete (%d entries): its first sync failed: %s", src, n, st.LastError)
	case !st.Complete:
		return fmt.Sprintf("source %s: the index is incomplete (%d entries so far): its first sync is in progress; images may be missing", src, n)
	case st.LastError != "":
		return fmt.Sprintf("source %s: the index is stale: the last sync failed at %s: %s; answering from the sync of %s",
			src, st.LastErrorAt.Format(time.RFC3339), st.LastError, st.LastSync.Format(time.RFC3339))
	}
	return ""
}

// lookup asks each source of idx (or only the named one) for the
// repository that name names, for a name or version that the mirrors do
// not have (see Source.Lookup). It reports whether any lookup ran.
func (p *Provider) lookup(ctx context.Context, idx []sourceIndex, name string) bool {
	name = strings.TrimSpace(name)
	if name == "" || find.HasWildcard(name) {
		return false
	}
	repo := strings.ToLower(name)
	var wg sync.WaitGroup
	for _, si := range idx {
		s, err := p.syncer(ctx, si.name)
		if err != nil {
			continue
		}
		wg.Go(func() {
			if err := s.src.Lookup(ctx, s.mirror, repo); err != nil && ctx.Err() == nil {
				p.log.WithField("source", si.name).WithField("repository", repo).WithError(err).Debug("the lookup of a name the index does not have failed")
			}
		})
	}
	wg.Wait()
	return len(idx) > 0
}

// resolve reads the entries of name in the mirrors (of every source, or
// of only) and applies fo; when nothing matches a name without wildcards,
// each source is asked for that repository once and the mirrors read
// again (see lookup).
func (p *Provider) resolve(ctx context.Context, only string, fo find.Options) ([]api.FindEntry, []sourceIndex, []string, error) {
	idx, skipped, err := p.indexes(ctx, only, fo.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	found, err := find.Filter(mergeIndexes(idx), fo)
	if errdefs.IsNotFound(err) && p.lookup(ctx, idx, fo.Name) {
		for i := range idx {
			if idx[i].entries, err = idx[i].mirror.Candidates(ctx, fo.Name); err != nil {
				return nil, nil, nil, err
			}
		}
		found, err = find.Filter(mergeIndexes(idx), fo)
	}
	var fe *find.Error
	if notes := append(slices.Clip(skipped), warnings(idx)...); len(notes) > 0 && errors.As(err, &fe) && errdefs.IsNotFound(err) {
		// Nothing found is no answer when a source was not asked, or
		// answered from an index that is not whole or not fresh.
		err = fe.WithNote("The answer may be incomplete: " + strings.Join(notes, "; ") + ".")
	}
	return found, idx, skipped, err
}

func mergeIndexes(idx []sourceIndex) []api.FindEntry {
	var all []api.FindEntry
	for _, si := range idx {
		all = append(all, si.entries...)
	}
	return all
}

func warnings(idx []sourceIndex) []string {
	var out []string
	for _, si := range idx {
		if si.warning != "" {
			out = append(out, si.warning)
		}
	}
	return out
}

func (p *Provider) sourceStatus(ctx context.Context, name string) (api.SourceStatus, error) {
	s, err := p.syncer(ctx, name)
	if err != nil {
		return api.SourceStatus{}, err
	}
	st, n, err := s.mirror.State(ctx)
	if err != nil {
		return api.SourceStatus{}, err
	}
	out := api.SourceStatus{
		Mode:      st.Mode,
		Entries:   n,
		Complete:  st.Complete,
		Syncing:   s.isSyncing(),
		LastError: st.LastError,
		Origin:    st.Origin,
		Warning:   mirrorWarning(name, st, n),
	}
	if !st.LastSync.IsZero() {
		t := st.LastSync
		out.LastSync = &t
	}
	if st.Mode == mirror.ModeCrawl {
		out.Repositories, out.RepositoriesRead = st.Listed, st.Crawled
	}
	return out, nil
}

// RefreshSource syncs the mirror of the source name now and returns the
// source with the state of its mirror, in which the error of the sync is,
// if it failed. NotFound when there is no such source.
func (p *Provider) RefreshSource(ctx context.Context, name string) (api.Source, error) {
	src, err := p.sourceSetting(ctx, name)
	if err != nil {
		return api.Source{}, err
	}
	s, err := p.syncer(ctx, name)
	if err != nil {
		return api.Source{}, err
	}
	if err := s.sync(ctx); err != nil && ctx.Err() != nil {
		return api.Source{}, ctx.Err()
	}
	s.firstOnce.Do(func() { close(s.first) })
	st, err := p.sourceStatus(ctx, name)
	if err != nil {
		return api.Source{}, err
	}
	src = src.WithoutPasswords()
	src.Status = &st
	return src, nil
}
