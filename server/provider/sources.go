package provider

import (
	"net/http"

	"github.com/containerprovider/containerprovider/api"
)

// listSources answers GET /v1/sources: 200 api.SourcesResponse, without
// passwords.
func (s *Server) listSources(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	sources, err := s.backend.Sources(r.Context())
	if err != nil {
		return err
	}
	for i := range sources {
		sources[i] = sources[i].WithoutPasswords()
	}
	return writeJSON(w, http.StatusOK, api.SourcesResponse{Sources: nonNil(sources)})
}

// addSource answers POST /v1/sources with an api.Source body: 201 with the
// source (its password left out) and the Location of its route; 409
// AlreadyExists when the name is taken.
func (s *Server) addSource(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var src api.Source
	if err := decodeJSON(w, r, &src); err != nil {
		return err
	}
	added, err := s.backend.AddSource(r.Context(), src)
	if err != nil {
		return err
	}
	added = added.WithoutPasswords()
	if loc, err := s.urlPath(RouteSource, varName, added.Name); err == nil {
		w.Header().Set("Location", loc)
	}
	return writeJSON(w, http.StatusCreated, added)
}

// removeSource answers DELETE /v1/sources/{name}: 204, or 404 when there
// is no source by that name.
func (s *Server) removeSource(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	if err := s.backend.RemoveSource(r.Context(), vars(r)[varName]); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// refreshSource answers POST /v1/sources/{name}/refresh: it syncs the
// source's index now and answers 200 with the source and the state of its
// index (whose lastError says why, if the sync failed); 404 when there is
// no source by that name.
func (s *Server) refreshSource(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	src, err := s.backend.RefreshSource(r.Context(), vars(r)[varName])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, src)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
