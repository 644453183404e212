package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// Bounds of a sync.
const (
	// feedPageSize is the n asked of catalogd's change feed.
	feedPageSize = 1000
	// maxFeedPages bounds the pages of one sync from the feed (10^8
	// changes), maxFeedResets its resyncs.
	maxFeedPages  = 100000
	maxFeedResets = 3
	// maxCatalogPages bounds the pages of _catalog of one crawl pass
	// (10^8 repositories at the default page size).
	maxCatalogPages = 100000
	// crawlBatch is the number of repositories a crawl takes from the
	// mirror at a time.
	crawlBatch = 64
)

// errNoFindExtension says that the registry answered the find extension as
// a registry without it does.
var errNoFindExtension = errors.New("no find extension")

// Sync brings the mirror m of the source up to date, and records in its
// state how it went.
//
// From catalogd it reads the change feed (GET /v2/_find/changes) from
// where the mirror stands, a page at a time, each page written in one
// transaction with the feed's position, so that a sync that stops (an
// error, a restart) goes on from there. A resync that the feed asks for
// (or another index than the mirror followed) empties the mirror and
// reads the feed from the start.
//
// From a registry without the feed (400, 404, 405 or 501 there) it
// crawls: _catalog page by page, each page recorded, then each
// repository listed and not yet read in this pass: its tags/list (with
// If-None-Match when the registry gave an ETag), a HEAD of each tag it
// knew, and a GET of each tag that is new or moved; each manifest is read
// once per digest and kept, with the created and os.version of its image
// config. Repositories are read crawlConcurrency at a time and written one
// per transaction, so the crawl resumes after a restart at the
// repositories it had not read. A pass ends by dropping the repositories
// that _catalog no longer lists. Nothing is capped: a pass reads every
// repository and every tag. A repository whose tags cannot be read keeps
// what the mirror had of it, and the state's LastError says how many
// failed; the pass fails when every repository does.
//
// Syncs and feed lookups of one client are serialized.
func (c *Client) Sync(ctx context.Context, m *mirror.Mirror) error {
	select {
	case c.syncSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.syncSem }()
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	if st.Mode != mirror.ModeCrawl {
		err := c.syncFeed(ctx, m, st)
		if !errors.Is(err, errNoFindExtension) {
			return c.record(ctx, m, err)
		}
		c.log.WithError(err).Debug("syncing by a crawl of _catalog, tags/list and the manifests")
		st = mirror.State{Mode: mirror.ModeCrawl}
		if err := m.Reset(ctx, st); err != nil {
			return err
		}
	}
	return c.record(ctx, m, c.syncCrawl(ctx, m, st))
}

// record writes the outcome of a sync into the mirror's state.
func (c *Client) record(ctx context.Context, m *mirror.Mirror, syncErr error) error {
	if syncErr == nil {
		return nil
	}
	if ctx.Err() != nil {
		return syncErr // stopped, not failed
	}
	st, _, err := m.State(ctx)
	if err != nil {
		return errors.Join(syncErr, err)
	}
	st.LastError, st.LastErrorAt = api.ErrorMessage(syncErr), time.Now().UTC()
	if err := m.SetState(ctx, st); err != nil {
		return errors.Join(syncErr, err)
	}
	return syncErr
}

// Lookup reads what the source has of the repository repo now, for a name
// or a version that the mirror does not know: from catalogd, the changes
// of the feed since the mirror's position (which hold an image pushed a
// moment ago); from a plain registry, the tags and manifests of repo
// alone. A repository the registry does not have is not an error.
func (c *Client) Lookup(ctx context.Context, m *mirror.Mirror, repo string) error {
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	switch st.Mode {
	case mirror.ModeFeed:
		return c.Sync(ctx, m)
	case mirror.ModeCrawl:
		if model.ValidateName(repo) != nil {
			return nil // no repository can have that name
		}
		r, _, err := m.Repository(ctx, repo)
		if err != nil {
			return err
		}
		if r.Listed == 0 {
			r.Listed = st.Pass // listed by this lookup, kept by the pass
		}
		return c.crawlRepository(ctx, m, repo, r, &configCache{versions: map[string]configInfo{}}, false)
	}
	return nil // no sync yet: the first one is under way
}

// changes reads one page of catalogd's change feed.
func (c *Client) changes(ctx context.Context, since uint64, n int) (api.FindChanges, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "n": {strconv.Itoa(n)}}
	resp, err := c.get(ctx, c.endpoint("/v2/_find/changes", q), catalogScope, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return api.FindChanges{}, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return api.FindChanges{}, fmt.Errorf("%w: %w", errNoFindExtension, statusError(resp))
	default:
		return api.FindChanges{}, statusError(resp)
	}
	body, err := readLimited(resp.Body, maxFindBody)
	_ = resp.Body.Close()
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return api.FindChanges{}, err
		}
		return api.FindChanges{}, transportError(ctx, err)
	}
	var ch api.FindChanges
	if err := json.Unmarshal(body, &ch); err != nil {
		return api.FindChanges{}, fmt.Errorf("the answer is not a change feed: %v: %w", err, errdefs.ErrUnavailable)
	}
	if ch.More && len(ch.Changes) == 0 && !ch.Resync {
		return api.FindChanges{}, fmt.Errorf("the change feed says more follows but gave nothing: %w", errdefs.ErrUnavailable)
	}
	return ch, nil
}

// syncFeed follows catalogd's change feed from st (see Sync).
func (c *Client) syncFeed(ctx context.Context, m *mirror.Mirror, st mirror.State) error {
	fail := func(err error) error { return fmt.Errorf("source %s: change feed: %w", c.name, err) }
	resets := 0
	for range maxFeedPages {
		ch, err := c.changes(ctx, st.Seq, feedPageSize)
		if err != nil {
			return fail(err)
		}
		if ch.Resync || (st.Index != "" && ch.Index != st.Index) {
			if resets++; resets > maxFeedResets {
				return fail(fmt.Errorf("the feed asked for a resync %d times in a row: %w", resets, errdefs.ErrUnavailable))
			}
			c.log.WithFields(map[string]any{"index": ch.Index, "since": st.Seq}).
				Warn("the change feed cannot answer from where the mirror stands: syncing the whole catalog again")
			st = mirror.State{Mode: mirror.ModeFeed}
			if err := m.Reset(ctx, st); err != nil {
				return err
			}
			continue
		}
		for _, chg := range ch.Changes {
			if chg.Seq <= st.Seq || chg.Seq > ch.Last {
				return fail(fmt.Errorf("change %d is outside (%d, %d]: %w", chg.Seq, st.Seq, ch.Last, errdefs.ErrUnavailable))
			}
		}
		st.Mode, st.Index, st.Seq = mirror.ModeFeed, ch.Index, ch.Last
		if !ch.More {
			st.Complete, st.LastSync, st.LastError, st.LastErrorAt = true, time.Now().UTC(), "", time.Time{}
		}
		if err := m.ApplyChanges(ctx, ch.Changes, st); err != nil {
			return err
		}
		if !ch.More {
			return nil
		}
	}
	return fail(fmt.Errorf("more than %d pages: %w", maxFeedPages, errdefs.ErrUnavailable))
}

// syncCrawl runs, or resumes, a crawl pass (see Sync).
func (c *Client) syncCrawl(ctx context.Context, m *mirror.Mirror, st mirror.State) error {
	fail := func(err error) error { return fmt.Errorf("source %s: crawl: %w", c.name, err) }
	if st.Pass == 0 || st.PassDone {
		st.Pass++
		st.PassDone, st.CatalogLast, st.CatalogDone, st.Listed, st.Crawled, st.Failed = false, "", false, 0, 0, 0
		if err := m.SetState(ctx, st); err != nil {
			return err
		}
	}
	for page := 0; !st.CatalogDone; page++ {
		if page >= maxCatalogPages {
			return fail(fmt.Errorf("_catalog: more than %d pages: %w", maxCatalogPages, errdefs.ErrUnavailable))
		}
		repos, more, err := c.catalogPage(ctx, st.CatalogLast)
		if err != nil {
			return fail(fmt.Errorf("_catalog: %w", err))
		}
		var valid []string
		for _, r := range repos {
			if model.ValidateName(r) != nil {
				c.log.WithField("repository", r).Debug("skipping a repository whose name is not valid")
				continue
			}
			valid = append(valid, r)
		}
		if len(repos) > 0 {
			if repos[len(repos)-1] <= st.CatalogLast {
				return fail(fmt.Errorf("_catalog: the page after %q does not move on: %w", st.CatalogLast, errdefs.ErrUnavailable))
			}
			st.CatalogLast = repos[len(repos)-1]
		}
		st.Listed += len(valid)
		st.CatalogDone = !more || len(repos) == 0
		if err := m.ListRepositories(ctx, valid, st); err != nil {
			return err
		}
	}

	configs := &configCache{versions: map[string]configInfo{}}
	var failMu sync.Mutex
	var firstErr error
	after := ""
	for range maxCatalogPages {
		batch, err := m.Pending(ctx, st.Pass, after, crawlBatch)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		after = batch[len(batch)-1]
		err = parallel(ctx, len(batch), crawlConcurrency, func(ctx context.Context, i int) error {
			repo := batch[i]
			r, _, err := m.Repository(ctx, repo)
			if err != nil {
				return err
			}
			err = c.crawlRepository(ctx, m, repo, r, configs, true)
			if err == nil || ctx.Err() != nil {
				return err
			}
			c.log.WithError(err).WithField("repository", repo).Debug("keeping what the mirror had of a repository whose tags cannot be read")
			failMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			failMu.Unlock()
			// The pass goes on; the repository counts as read, and failed.
			r.Crawled = st.Pass
			return m.MarkFailed(ctx, repo, r)
		})
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return fail(err)
		}
	}
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	if st.Listed > 0 && st.Failed == st.Listed {
		return fail(fmt.Errorf("no repository could be read: %w", firstErr))
	}
	st.PassDone, st.Complete, st.LastSync = true, true, time.Now().UTC()
	st.LastError, st.LastErrorAt = "", time.Time{}
	if st.Failed > 0 {
		st.LastError = fmt.Sprintf("%d of %d repositories could not be read: %s", st.Failed, st.Listed, api.ErrorMessage(firstErr))
		st.LastErrorAt = st.LastSync
	}
	dropped, err := m.EndPass(ctx, st.Pass, st)
	if err != nil {
		return err
	}
	c.log.WithFields(map[string]any{"pass": st.Pass, "repositories": st.Listed, "dropped": dropped, "failed": st.Failed}).
		Debug("crawl pass ended")
	return nil
}

// catalogPage reads the page of _catalog after last.
func (c *Client) catalogPage(ctx context.Context, last string) ([]string, bool, error) {
	q := url.Values{"n": {strconv.Itoa(c.pageSize)}}
	if last != "" {
		q.Set("last", last)
	}
	var body struct {
		Repositories []string `json:"repositories"`
	}
	next, _, err := c.getJSONIfNoneMatch(ctx, c.endpoint("/v2/_catalog", q), catalogScope, "", &body)
	if err != nil {
		return nil, false, err
	}
	return body.Repositories, next != "", nil
}

// crawlRepository reads the tags of repo and the manifests that are new or
// moved, and writes them to m (see Sync). counted says that a pass reads
// it, not a lookup.
func (c *Client) crawlRepository(ctx context.Context, m *mirror.Mirror, repo string, r mirror.Repository, configs *configCache, counted bool) error {
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	if counted {
		r.Crawled = st.Pass
	}
	tags, etag, notModified, err := c.tagList(ctx, repo, r.ETag)
	if errdefs.IsNotFound(err) {
		// The repository is gone (or never was): it has no entries.
		r.Tags, r.ETag = nil, ""
		return m.PutRepository(ctx, repo, r, nil, counted)
	}
	if err != nil {
		return err
	}
	if notModified {
		return m.PutRepository(ctx, repo, r, nil, counted)
	}
	var dgsts []string
	for _, d := range r.Tags {
		dgsts = append(dgsts, d)
	}
	known, err := m.Manifests(ctx, dgsts)
	if err != nil {
		return err
	}
	next := map[string]string{}
	var read []mirror.Manifest
	var firstErr error
	for _, tag := range tags {
		if prev, ok := r.Tags[tag]; ok && known[prev].Digest != "" {
			d, err := c.headDigest(ctx, repo, tag)
			if err == nil && d == prev {
				next[tag] = prev
				continue
			}
			if errdefs.IsNotFound(err) {
				continue // untagged since the listing
			}
		}
		mf, err := c.readManifest(ctx, repo, tag, configs)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if !errdefs.IsNotFound(err) {
				c.log.WithError(err).WithField("repository", repo).WithField("tag", tag).Debug("skipping a tag whose manifest cannot be read")
				if firstErr == nil {
					firstErr = err
				}
			}
			continue
		}
		next[tag] = mf.Digest
		if _, ok := known[mf.Digest]; !ok {
			known[mf.Digest] = mf
			read = append(read, mf)
		}
	}
	if len(next) == 0 && firstErr != nil {
		// Not one manifest could be read: the repository failed.
		return firstErr
	}
	r.Tags, r.ETag = next, etag
	return m.PutRepository(ctx, repo, r, read, counted)
}

// tagList reads every page of the tags of repo; with etag, the first page
// asks If-None-Match, and notModified says the registry answered 304.
func (c *Client) tagList(ctx context.Context, repo, etag string) (tags []string, newETag string, notModified bool, err error) {
	u := c.endpoint("/v2/"+repo+"/tags/list", url.Values{"n": {strconv.Itoa(c.pageSize)}})
	seen := map[string]bool{}
	for page := 0; page < maxListPages; page++ {
		seen[u.String()] = true
		var body struct {
			Tags []string `json:"tags"`
		}
		inm := ""
		if page == 0 {
			inm = etag
		}
		next, tag, err := c.getJSONIfNoneMatch(ctx, u, pullScope(repo), inm, &body)
		if errors.Is(err, errNotModified) {
			return nil, etag, true, nil
		}
		if err != nil {
			return nil, "", false, err
		}
		if page == 0 {
			newETag = tag
		}
		tags = append(tags, body.Tags...)
		if next == "" {
			return tags, newETag, false, nil
		}
		nu, err := u.Parse(next)
		if err != nil || nu.Scheme != u.Scheme || nu.Host != u.Host {
			return nil, "", false, fmt.Errorf("%s: Link to the next page %q: not on the same registry: %w",
				u.Redacted(), next, errdefs.ErrUnavailable)
		}
		if seen[nu.String()] {
			return tags, newETag, false, nil
		}
		u = nu
	}
	return nil, "", false, fmt.Errorf("repository %s: tags/list: more than %d pages: %w", repo, maxListPages, errdefs.ErrUnavailable)
}

var errNotModified = errors.New("not modified")

// getJSONIfNoneMatch reads the JSON body of a GET of u into v, sent with
// If-None-Match: inm when inm is set (errNotModified for a 304), and
// returns the target of its Link rel="next" header and its ETag.
func (c *Client) getJSONIfNoneMatch(ctx context.Context, u *url.URL, scope, inm string, v any) (next, etag string, err error) {
	hdr := http.Header{"Accept": {"application/json"}}
	if inm != "" {
		hdr.Set("If-None-Match", inm)
	}
	resp, err := c.get(ctx, u, scope, hdr)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode == http.StatusNotModified && inm != "" {
		drain(resp)
		return "", "", errNotModified
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", statusError(resp)
	}
	body, err := readLimited(resp.Body, maxListBody)
	_ = resp.Body.Close()
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return "", "", err
		}
		return "", "", transportError(ctx, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return "", "", fmt.Errorf("%s: bad JSON: %v: %w", u.Path, err, errdefs.ErrUnavailable)
	}
	return nextLink(resp.Header.Values("Link")), strings.TrimSpace(resp.Header.Get("ETag")), nil
}

// headDigest is the digest that the registry gives for repo:tag in the
// Docker-Content-Digest header of a HEAD; an error when it gives none.
func (c *Client) headDigest(ctx context.Context, repo, tag string) (string, error) {
	u := c.endpoint("/v2/"+repo+"/manifests/"+tag, nil)
	resp, err := c.send(ctx, http.MethodHead, u, pullScope(repo), http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return "", err
	}
	drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", statusError(resp)
	}
	d, err := model.ParseDigest(strings.TrimSpace(resp.Header.Get("Docker-Content-Digest")))
	if err != nil {
		return "", fmt.Errorf("HEAD %s: no Docker-Content-Digest: %w", u.Path, errdefs.ErrUnavailable)
	}
	return d.String(), nil
}
