package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Catalog lists every image of the source, every version, each entry with
// Source set to the source's name.
//
// It asks catalogd's find extension first (GET /v2/_find?allVersions=true).
// A 400, 404, 405 or 501 there means the registry has no find extension
// (since everything is asked for, a 404 never means "no match"), and
// Catalog falls back to the plain protocol: _catalog, tags/list, each tag's
// manifest and each image config's os.version, from which find.Index makes
// the entries with the very rules catalogd applies. The crawl reads at most
// 10000 repositories and 10000 tags in all, at most 1000 pages per listing,
// with at most 4 requests at a time; beyond that the catalog is truncated
// and a warning logged. A tag whose manifest cannot be read is
// skipped (and logged at debug level); the crawl fails when a listing
// fails, or when every repository or every manifest does.
//
// The answer is reused for the catalog TTL (WithCatalogTTL); concurrent
// calls then share one request. The caller may modify the entries.
func (c *Client) Catalog(ctx context.Context) ([]api.FindEntry, error) {
	if c.catalog.ttl <= 0 {
		return c.readCatalog(ctx)
	}
	select {
	case c.catalog.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("source %s: catalog: %w", c.name, ctx.Err())
	}
	defer func() { <-c.catalog.sem }()
	if c.catalog.entries != nil && time.Since(c.catalog.at) < c.catalog.ttl {
		return cloneEntries(c.catalog.entries), nil
	}
	entries, err := c.readCatalog(ctx)
	if err != nil {
		return nil, err
	}
	c.catalog.entries, c.catalog.at = cloneEntries(entries), time.Now()
	return entries, nil
}

// catalogCache holds the last answer of Catalog. sem (a one-slot
// semaphore that a waiting context can leave) guards the other fields.
type catalogCache struct {
	ttl     time.Duration
	sem     chan struct{}
	entries []api.FindEntry
	at      time.Time
}

func newCatalogCache(ttl time.Duration) catalogCache {
	return catalogCache{ttl: ttl, sem: make(chan struct{}, 1)}
}

func cloneEntries(es []api.FindEntry) []api.FindEntry {
	out := slices.Clone(es)
	for i := range out {
		if p := out[i].Parent; p != nil {
			cp := *p
			out[i].Parent = &cp
		}
	}
	if out == nil {
		out = []api.FindEntry{}
	}
	return out
}

// errNoFindExtension says that the registry answered the find extension as
// a registry without it does.
var errNoFindExtension = errors.New("no find extension")

func (c *Client) readCatalog(ctx context.Context) ([]api.FindEntry, error) {
	entries, err := c.findAll(ctx)
	if errors.Is(err, errNoFindExtension) {
		c.log.WithError(err).Debug("reading the catalog from _catalog, tags/list and the manifests")
		entries, err = c.crawl(ctx)
	}
	if err != nil {
		return nil, err
	}
	for i := range entries {
		entries[i].Source = c.name
	}
	if entries == nil {
		entries = []api.FindEntry{}
	}
	return entries, nil
}

// findAll asks the find extension for every version of every image.
func (c *Client) findAll(ctx context.Context) ([]api.FindEntry, error) {
	fail := func(err error) ([]api.FindEntry, error) {
		return nil, fmt.Errorf("source %s: find: %w", c.name, err)
	}
	u := c.endpoint("/v2/_find", url.Values{"allVersions": {"true"}})
	resp, err := c.get(ctx, u, catalogScope, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return fail(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return fail(fmt.Errorf("%w: %w", errNoFindExtension, statusError(resp)))
	default:
		return fail(statusError(resp))
	}
	body, err := readLimited(resp.Body, maxFindBody)
	_ = resp.Body.Close()
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return fail(err)
		}
		return fail(transportError(ctx, err))
	}
	var fr api.FindResponse
	if err := json.Unmarshal(body, &fr); err != nil {
		return fail(fmt.Errorf("the answer is not a find response: %v: %w", err, errdefs.ErrUnavailable))
	}
	return fr.Images, nil
}

// parallel calls fn(i) for i in [0, n), at most limit at a time, and
// returns the first error of a call. After an error, or when ctx ends, the
// calls not started yet are not made.
func parallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= n || ctx.Err() != nil {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(limit, n) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr == nil && next < n {
		// Calls were left out because the parent context ended.
		return ctx.Err()
	}
	return firstErr
}
