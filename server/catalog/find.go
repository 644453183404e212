package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// The query parameters of the find extension.
const (
	findName            = "name"
	findRequiredVersion = "requiredVersion"
	findMinimumVersion  = "minimumVersion"
	findMaximumVersion  = "maximumVersion"
	findAllVersions     = "allVersions"
)

var findParams = []string{findName, findRequiredVersion, findMinimumVersion, findMaximumVersion, findAllVersions, "n", "last"}

// The change feed's page: defaultChangesPage changes unless n asks for
// fewer, or more up to maxChangesPage.
const (
	defaultChangesPage = 1000
	maxChangesPage     = 10000
)

// findDetail is the detail of a find error: OneGet's error id, which a
// client can report as the FullyQualifiedErrorId of Find-ContainerImage.
type findDetail struct {
	ID string `json:"id"`
}

// find answers GET /v2/_find, catalogd's extension that answers
// Find-ContainerImage for the whole catalog in one request:
//
//	/v2/_find?name=&requiredVersion=&minimumVersion=&maximumVersion=&allVersions=true
//
// 200 is an api.FindResponse. Options that OneGet refuses are 400
// FIND_INVALID with OneGet's message (an unknown parameter or an
// allVersions that is not a boolean too). No match for a name without
// wildcards, or for a RequiredVersion, is 404 with OneGet's message and,
// for generic OCI clients, a spec code: NAME_UNKNOWN when no image has
// that name at all, MANIFEST_UNKNOWN when the name exists but none of its
// versions (which are its tags) matches. A wildcard that matches nothing
// is an empty 200, as in OneGet.
//
// The listing (no name) pages as _catalog does when n is given: a page
// holds the entries of at most n names, in the order of their lower-cased
// names, after the name last, and a Link header leads to the next page. A
// page is never a 404: a requiredVersion that no name of a page has gives
// an empty page, and the Link leads on.
//
// Every answer carries an ETag, the state of the index (FindETag); a GET
// whose If-None-Match holds it is a 304 that reads nothing else.
func (s *Server) find(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(findParams, k) {
			return withCode(CodeFindInvalid, nil, fmt.Errorf("find: unknown query parameter %q (known: %v): %w",
				k, findParams, errdefs.ErrInvalidArgument))
		}
	}
	p, err := parsePagination(r)
	if err != nil {
		return err
	}
	if p.n >= 0 && strings.TrimSpace(q.Get(findName)) != "" {
		return withCode(CodeFindInvalid, nil, fmt.Errorf("find: n and last page the listing, which has no name: %w",
			errdefs.ErrInvalidArgument))
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		tag, err := s.reg.FindETag(r.Context())
		if err != nil {
			return err
		}
		if etagMatches(inm, tag) {
			w.Header().Set("ETag", tag)
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
	}
	opts := find.Options{
		Name:            q.Get(findName),
		RequiredVersion: q.Get(findRequiredVersion),
		MinimumVersion:  q.Get(findMinimumVersion),
		MaximumVersion:  q.Get(findMaximumVersion),
	}
	if v, ok := q[findAllVersions]; ok {
		all := true // a bare ?allVersions is a switch that is on
		if v[0] != "" {
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return withCode(CodeFindInvalid, nil, fmt.Errorf("find: allVersions=%q is not a boolean: %w",
					v[0], errdefs.ErrInvalidArgument))
			}
			all = b
		}
		opts.AllVersions = all
	}
	if err := opts.Validate(); err != nil {
		return findError(err, nil)
	}
	if p.n == 0 {
		return writeJSON(w, r, http.StatusOK, "application/json", api.FindResponse{Images: []api.FindEntry{}})
	}
	if p.n < 0 && strings.TrimSpace(opts.Name) == "" {
		return s.streamListing(w, r, opts)
	}
	page, err := s.reg.FindPage(r.Context(), opts, p.last, max(p.n, 0))
	if err != nil {
		return findError(err, func() bool {
			named, err := s.reg.Find(r.Context(), find.Options{Name: opts.Name, AllVersions: true})
			return err == nil && len(named) > 0
		})
	}
	if page.Next != "" {
		path, err := s.urlFor(RouteFind)
		if err != nil {
			return err
		}
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("n", strconv.Itoa(p.n))
		next.Set("last", page.Next)
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, next.Encode()))
	}
	if page.Entries == nil {
		page.Entries = []api.FindEntry{}
	}
	w.Header().Set("ETag", page.ETag)
	return writeJSON(w, r, http.StatusOK, "application/json", api.FindResponse{Images: page.Entries})
}

// listingPage is the number of names that the whole listing reads at a
// time (a variable for the tests); maxListingPages bounds its pages.
var listingPage = 1000

const maxListingPages = 1000000

// streamListing answers the whole listing (no name, no n) page by page,
// listingPage names at a time, each page read in its own read transaction
// and written as it is read, so that neither catalogd's memory nor a
// transaction grows with the catalog. A change during the listing shows
// in it or not, as with the pages of _catalog. An error after the first
// bytes aborts the response, so that a client never takes a cut listing
// for a whole one. A requiredVersion that no page has is NoMatch, as for
// the listing in one piece.
func (s *Server) streamListing(w http.ResponseWriter, r *http.Request, opts find.Options) error {
	ctx := r.Context()
	started, wrote := false, 0
	last := ""
	for range maxListingPages {
		page, err := s.reg.FindPage(ctx, opts, last, listingPage)
		if err != nil {
			if started {
				middleware.Log(ctx).WithError(err).Error("find listing cut short")
				panic(http.ErrAbortHandler)
			}
			return findError(err, nil)
		}
		if !started && (len(page.Entries) > 0 || page.Next == "") {
			if len(page.Entries) == 0 && strings.TrimSpace(opts.RequiredVersion) != "" {
				return findError(find.NoMatch("", strings.TrimSpace(opts.RequiredVersion)), func() bool {
					named, err := s.reg.Find(ctx, find.Options{AllVersions: true})
					return err == nil && len(named) > 0
				})
			}
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("ETag", page.ETag)
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodHead {
				return nil
			}
			_, _ = io.WriteString(w, `{"images":[`)
			started = true
		}
		for _, e := range page.Entries {
			b, err := json.Marshal(e)
			if err != nil {
				middleware.Log(ctx).WithError(err).Error("find listing cut short")
				panic(http.ErrAbortHandler)
			}
			if wrote > 0 {
				b = append([]byte{','}, b...)
			}
			if _, err := w.Write(b); err != nil {
				panic(http.ErrAbortHandler) // the client went away
			}
			wrote++
		}
		if page.Next == "" {
			_, _ = io.WriteString(w, "]}")
			return nil
		}
		last = page.Next
	}
	middleware.Log(ctx).Errorf("find listing: more than %d pages of %d names", maxListingPages, listingPage)
	panic(http.ErrAbortHandler)
}

// etagMatches reports whether an If-None-Match header holds tag (RFC
// 9110: a list of entity tags, or *; weak tags compare weakly).
func etagMatches(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}

// findChanges answers GET /v2/_find/changes?since=SEQ&n=N: the change
// feed of the find index (api.FindChanges), at most n changes after the
// sequence number since (0, the default, lists every entry), with a Link
// to the next page when More. A since that the feed cannot answer from
// is a 200 with resync set, and the client starts again from 0.
func (s *Server) findChanges(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "since" && k != "n" {
			return withCode(CodeFindInvalid, nil, fmt.Errorf("find changes: unknown query parameter %q (known: since, n): %w",
				k, errdefs.ErrInvalidArgument))
		}
	}
	var since uint64
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return withCode(CodeFindInvalid, nil, fmt.Errorf("find changes: since=%q is not a sequence number: %w",
				v, errdefs.ErrInvalidArgument))
		}
	}
	n := defaultChangesPage
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return withCode(CodePaginationNumberInvalid, nil, fmt.Errorf("find changes: n=%q: must be a number >= 1: %w",
				v, errdefs.ErrInvalidArgument))
		}
		n = min(n, maxChangesPage)
	}
	ch, err := s.reg.Changes(r.Context(), since, n)
	if err != nil {
		return err
	}
	if ch.More {
		path, err := s.urlFor(RouteFindChanges)
		if err != nil {
			return err
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s?since=%d&n=%d>; rel="next"`, path, ch.Last, n))
	}
	return writeJSON(w, r, http.StatusOK, "application/json", ch)
}

// findError gives a find error its code. nameKnown tells a not-found
// apart: the name exists, or not.
func findError(err error, nameKnown func() bool) error {
	var detail any
	var fe *find.Error
	if errors.As(err, &fe) {
		detail = findDetail{ID: fe.ID}
	}
	switch {
	case errdefs.IsInvalidArgument(err):
		return withCode(CodeFindInvalid, detail, err)
	case errdefs.IsNotFound(err):
		if nameKnown != nil && nameKnown() {
			return withCode(CodeManifestUnknown, detail, err)
		}
		return withCode(CodeNameUnknown, detail, err)
	}
	return err
}
