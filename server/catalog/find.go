package catalog

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// The query parameters of the find extension.
const (
	findName            = "name"
	findRequiredVersion = "requiredVersion"
	findMinimumVersion  = "minimumVersion"
	findMaximumVersion  = "maximumVersion"
	findAllVersions     = "allVersions"
)

var findParams = []string{findName, findRequiredVersion, findMinimumVersion, findMaximumVersion, findAllVersions}

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
func (s *Server) find(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains(findParams, k) {
			return withCode(CodeFindInvalid, nil, fmt.Errorf("find: unknown query parameter %q (known: %v): %w",
				k, findParams, errdefs.ErrInvalidArgument))
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
	images, err := s.reg.Find(r.Context(), opts)
	if err != nil {
		return findError(err, func() bool {
			named, err := s.reg.Find(r.Context(), find.Options{Name: opts.Name, AllVersions: true})
			return err == nil && len(named) > 0
		})
	}
	if images == nil {
		images = []api.FindEntry{}
	}
	return writeJSON(w, r, http.StatusOK, "application/json", api.FindResponse{Images: images})
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
