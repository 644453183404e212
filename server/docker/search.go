package docker

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider"
)

// Limits of GET /images/search.
const (
	defaultSearchLimit = 25
	maxSearchLimit     = 100
)

// officialPublisher is the publisher whose images are official.
const officialPublisher = "CN=Microsoft"

// searchResult is moby's ImageSearchResponseItem.
type searchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

var (
	searchFilters      = []string{"is-official", "is-automated"}
	knownSearchFilters = []string{"stars"}
)

// searchImages is `docker search`: the latest version of every image of
// the sources whose repository, name or description holds the term
// (case-insensitively), one row per repository, in the sources' order
// (by name). A term with the wildcards * and ? is a pattern that the whole
// repository or name matches, as Find-ContainerImage's -Name: `docker
// search '*'` lists every repository, `docker search 'microsoft/*'` those
// under microsoft/. The limit defaults to 25; outside 1-100 it is a 400.
func (s *Server) searchImages(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := defaultSearchLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return newError(errdefs.ErrInvalidArgument, "invalid limit %q", v)
		}
		if n != 0 {
			limit = n
		}
	}
	if limit < 1 || limit > maxSearchLimit {
		return newError(errdefs.ErrInvalidArgument, "limit %d is outside the range of [1, %d]", limit, maxSearchLimit)
	}
	f, err := parseFilters(r, searchFilters, knownSearchFilters)
	if err != nil {
		return err
	}
	official, hasOfficial, err := f.boolFilter("is-official")
	if err != nil {
		return err
	}
	automated, hasAutomated, err := f.boolFilter("is-automated")
	if err != nil {
		return err
	}
	term := strings.ToLower(strings.TrimSpace(q.Get("term")))
	if term == "" {
		return newError(errdefs.ErrInvalidArgument, "a search term is required")
	}
	pattern := find.HasWildcard(term)
	opts := provider.FindOptions{}
	if pattern {
		opts.Name = term
	}
	res, err := s.backend.Find(r.Context(), opts)
	if err != nil {
		return err
	}
	entries := res.Images
	out := []searchResult{}
	seen := map[string]bool{}
	for _, e := range entries {
		if len(out) == limit {
			break
		}
		if seen[e.Repository] {
			continue
		}
		if !pattern && !strings.Contains(strings.ToLower(e.Repository), term) &&
			!strings.Contains(strings.ToLower(e.Name), term) &&
			!strings.Contains(strings.ToLower(e.Description), term) {
			continue
		}
		if pattern && !find.MatchName(term, e.Repository) && !find.MatchName(term, e.Name) {
			continue
		}
		res := searchResult{
			Name:        e.Repository,
			Description: e.Description,
			IsOfficial:  strings.EqualFold(e.Publisher, officialPublisher),
		}
		if hasOfficial && res.IsOfficial != official {
			continue
		}
		if hasAutomated && res.IsAutomated != automated {
			continue
		}
		seen[e.Repository] = true
		out = append(out, res)
	}
	return writeJSON(w, out)
}
