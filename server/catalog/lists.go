package catalog

import (
	"errors"
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/catalog"
)

// tagList is the body of GET /v2/<name>/tags/list.
type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// repositoryList is the body of GET /v2/_catalog.
type repositoryList struct {
	Repositories []string `json:"repositories"`
}

// listTags answers GET /v2/<name>/tags/list[?n=&last=]: the tags in
// lexical order after last, at most n, with a Link to the next page when
// more remain. A bad n is 400 PAGINATION_NUMBER_INVALID.
func (s *Server) listTags(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	p, err := parsePagination(r)
	if err != nil {
		return err
	}
	tags, err := s.reg.Tags(r.Context(), repo, p.fetch(), p.last)
	if err != nil {
		return err
	}
	tags, more := p.page(tags)
	if more {
		path, err := s.urlFor(RouteTags, varName, repo)
		if err != nil {
			return err
		}
		setNextLink(w, path, p.n, tags)
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, r, http.StatusOK, "application/json", tagList{Name: repo, Tags: tags})
}

// listRepositories answers GET /v2/_catalog[?n=&last=], paginated like
// tags/list.
func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePagination(r)
	if err != nil {
		return err
	}
	repos, err := s.reg.Repositories(r.Context(), p.fetch(), p.last)
	if err != nil {
		return err
	}
	repos, more := p.page(repos)
	if more {
		path, err := s.urlFor(RouteCatalog)
		if err != nil {
			return err
		}
		setNextLink(w, path, p.n, repos)
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(w, r, http.StatusOK, "application/json", repositoryList{Repositories: repos})
}

// referrers answers GET /v2/<name>/referrers/<digest>[?artifactType=]: an
// OCI image index of the manifests whose subject is digest, empty (not
// 404) when there are none or the repository is unknown. With
// artifactType, only those are listed and OCI-Filters-Applied says so.
func (s *Server) referrers(w http.ResponseWriter, r *http.Request) error {
	repo, dgst, err := blobParams(r)
	if err != nil {
		return err
	}
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := s.reg.Referrers(r.Context(), repo, dgst, artifactType)
	if err != nil && !errors.Is(err, catalog.ErrNameUnknown) {
		return err
	}
	if descs == nil {
		descs = []ocispec.Descriptor{}
	}
	if artifactType != "" {
		w.Header().Set(headerFilters, "artifactType")
	}
	index := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	}
	index.SchemaVersion = 2
	return writeJSON(w, r, http.StatusOK, ocispec.MediaTypeImageIndex, index)
}
