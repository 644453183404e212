package provider

import (
	"fmt"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// containersResponse is the body of GET /v1/containers.
type containersResponse struct {
	Containers []api.Container `json:"containers"`
}

// listContainers answers GET /v1/containers: 200 {"containers":[...]}, in the provider's order.
func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	list, err := s.backend.Containers(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, containersResponse{Containers: nonNil(list)})
}

// createContainer answers POST /v1/containers with an
// api.ContainerCreateRequest body: 201 api.Container with the Location of
// its route; 404 when the image is not installed, 409 AlreadyExists when
// the name is taken.
func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req api.ContainerCreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	c, err := s.backend.CreateContainer(r.Context(), req)
	if err != nil {
		return err
	}
	if loc, err := s.urlPath(RouteContainer, varRef, c.ID); err == nil {
		w.Header().Set("Location", loc)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"container": c.ID})
	return writeJSON(w, http.StatusCreated, c)
}

// getContainer answers GET /v1/containers/{ref}, {ref} an id, a unique id
// prefix or a name: 200 api.Container, or 404.
func (s *Server) getContainer(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	c, err := s.backend.Container(r.Context(), vars(r)[varRef])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// startContainer answers POST /v1/containers/{ref}/start: 200 api.Container
// in state Running. No process runs.
func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	c, err := s.backend.StartContainer(r.Context(), vars(r)[varRef])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// stopContainer answers POST /v1/containers/{ref}/stop: 200 api.Container
// in state Stopped.
func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	c, err := s.backend.StopContainer(r.Context(), vars(r)[varRef])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// copyToContainer answers PUT /v1/containers/{ref}/archive?path=/dest, as
// the Docker Engine API's archive endpoint: the body is a tar
// (application/x-tar, at most the archive cap) extracted under /dest in the
// container's directory. 204 on success; 400 without a path, and for
// entries the provider refuses (escaping /dest, links). The provider roots
// the path in the container.
func (s *Server) copyToContainer(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, paramPath)
	if err != nil {
		return err
	}
	dest := q.Get(paramPath)
	if !q.has(paramPath) || dest == "" {
		return fmt.Errorf("archive: the path query parameter names the destination in the container, e.g. ?path=/app: %w", errdefs.ErrInvalidArgument)
	}
	body, err := s.tarBody(w, r)
	if err != nil {
		return err
	}
	if err := s.backend.CopyToContainer(r.Context(), vars(r)[varRef], dest, body); err != nil {
		return body.cause(err)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"bytes_copied": body.n})
	extendWrite(w, r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeContainer answers DELETE /v1/containers/{ref}?force=true|false:
// 204; 409 Conflict for a running container without force.
func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, paramForce)
	if err != nil {
		return err
	}
	force, err := q.boolean(paramForce)
	if err != nil {
		return err
	}
	if err := s.backend.RemoveContainer(r.Context(), vars(r)[varRef], force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// commit answers POST /v1/images/commit with an api.CommitRequest body,
// New-ContainerImage: 201 with the new api.Image; 409 AlreadyExists when
// the name and version are taken and the request does not force.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req api.CommitRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	img, err := s.backend.Commit(r.Context(), req)
	if err != nil {
		return err
	}
	middleware.AddFields(r.Context(), logrus.Fields{"image": img.Name + " " + img.Version, "digest": img.Digest})
	extendWrite(w, r)
	return writeJSON(w, http.StatusCreated, img)
}
