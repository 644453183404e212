package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/gorilla/mux"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider"
)

// varID is the route variable of a container: an id, a unique id prefix
// or a name.
const varID = "id"

// maxCreateBody bounds the body of POST /containers/create and /commit.
const maxCreateBody = 1 << 20

// createBody is the part of moby's ContainerCreateRequest that providerd
// reads: the image. A container runs no process, so the rest is ignored.
type createBody struct {
	Image string `json:"Image"`
}

// createResponse is moby's ContainerCreateResponse.
type createResponse struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings"`
}

// containerSummary is moby's ContainerSummary (GET /containers/json).
type containerSummary struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"`
	Image   string            `json:"Image"`
	ImageID string            `json:"ImageID"`
	Command string            `json:"Command"`
	Created int64             `json:"Created"`
	Ports   []any             `json:"Ports"`
	Labels  map[string]string `json:"Labels"`
	State   string            `json:"State"`
	Status  string            `json:"Status"`
	Mounts  []any             `json:"Mounts"`
}

// idResponse is moby's IDResponse (POST /commit).
type idResponse struct {
	ID string `json:"Id"`
}

// errNoSuchContainer is Docker's not-found wording.
func errNoSuchContainer(ref string) error {
	return newError(errdefs.ErrNotFound, "No such container: %s", ref)
}

// findContainer finds the container that ref names, as the provider
// resolves it: a full id, a name (with or without its leading slash), or
// a unique id prefix of at least provider.MinIDPrefix hex. No match is
// Docker's "No such container", a prefix of several ids its "multiple IDs
// found". Naming a container ends its time as a
// fresh one (see freshContainers).
func (s *Server) findContainer(ctx context.Context, ref string) (api.Container, error) {
	c, err := s.lookupContainer(ctx, ref)
	if err == nil {
		s.fresh.forget(c.ID)
	}
	return c, err
}

// lookupContainer is findContainer without forgetting a fresh container.
func (s *Server) lookupContainer(ctx context.Context, ref string) (api.Container, error) {
	name := strings.TrimPrefix(strings.TrimSpace(ref), "/")
	if name == "" {
		return api.Container{}, errNoSuchContainer(ref)
	}
	c, err := s.backend.Container(ctx, name)
	switch {
	case errdefs.IsNotFound(err):
		return api.Container{}, errNoSuchContainer(ref)
	case errdefs.IsInvalidArgument(err): // a prefix of several ids
		return api.Container{}, newError(errdefs.ErrInvalidArgument, "multiple IDs found with provided prefix: %s", ref)
	}
	return c, err
}

// createContainer is `docker create`: a provider container on the image
// the body names. An image that is not installed is installed first (the
// provider's install job, waited for), as the CLI expects of the daemon.
func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) error {
	var body createBody
	if err := json.NewDecoder(io.LimitReader(r.Body, maxCreateBody)).Decode(&body); err != nil {
		return newError(errdefs.ErrInvalidArgument, "invalid JSON body: %v", err)
	}
	if strings.TrimSpace(body.Image) == "" {
		return newError(errdefs.ErrInvalidArgument, "config cannot be empty in order to create a container")
	}
	img, err := s.imageOrPull(r.Context(), body.Image)
	if err != nil {
		return err
	}
	c, err := s.backend.CreateContainer(r.Context(), api.ContainerCreateRequest{
		Image: img.Digest,
		Name:  strings.TrimPrefix(r.URL.Query().Get("name"), "/"),
	})
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return newError(errdefs.ErrConflict, "Conflict. The container name \"/%s\" is already in use: %v", r.URL.Query().Get("name"), err)
		}
		return err
	}
	s.fresh.add(c.ID)
	return writeJSONStatus(w, http.StatusCreated, createResponse{ID: c.ID, Warnings: []string{}})
}

// imageOrPull resolves name among the installed images, installing it
// first when it is a reference to an image that is not installed.
func (s *Server) imageOrPull(ctx context.Context, name string) (api.Image, error) {
	imgs, err := s.backend.Images(ctx, provider.GetOptions{})
	if err != nil {
		return api.Image{}, err
	}
	res, err := resolveImage(imgs, name)
	if err == nil || !errdefs.IsNotFound(err) {
		return res.img, err
	}
	ref, perr := parseRef(name)
	if perr != nil || ref.Digest != "" {
		return api.Image{}, err
	}
	if err := s.installAndWait(ctx, ref); err != nil {
		return api.Image{}, err
	}
	if imgs, err = s.backend.Images(ctx, provider.GetOptions{}); err != nil {
		return api.Image{}, err
	}
	res, err = resolveImage(imgs, name)
	return res.img, err
}

// installAndWait runs the install job of ref and waits for its end; a job
// that does not succeed is its error.
func (s *Server) installAndWait(ctx context.Context, ref imageRef) error {
	job, err := s.install(ctx, ref)
	if err != nil {
		return err
	}
	if job.State == api.JobQueued || job.State == api.JobRunning {
		events, err := s.backend.Watch(ctx, job.ID)
		if err != nil {
			return err
		}
		final := false
		for ev := range events {
			if ev.Type == api.EventResult && ev.Job != nil {
				job, final = *ev.Job, true
				break
			}
		}
		if !final {
			if err := ctx.Err(); err != nil {
				return err
			}
			return newError(errdefs.ErrUnavailable, "the progress stream of job %s ended before the job; the pull goes on in providerd", job.ID)
		}
	}
	if job.State != api.JobSucceeded {
		msg := "the install job ended in state " + job.State
		if job.Error != nil && job.Error.Message != "" {
			msg = job.Error.Message
		}
		return newError(errdefs.ErrFailedPrecondition, "pull %s: %s", ref, msg)
	}
	s.restoreRefs(ctx, job)
	return nil
}

// listContainers is `docker ps`: the running containers, or every one
// with all.
func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) error {
	all := false
	if v := r.URL.Query().Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return newError(errdefs.ErrInvalidArgument, "invalid value for all: %q", v)
		}
		all = b
	}
	ctrs, err := s.backend.Containers(r.Context())
	if err != nil {
		return err
	}
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	byDigest := map[string]api.Image{}
	for _, img := range imgs {
		byDigest[img.Digest] = img
	}
	out := []containerSummary{}
	now := time.Now()
	// Newest first, as the daemon lists them.
	for i := len(ctrs) - 1; i >= 0; i-- {
		c := ctrs[i]
		if !all && c.State != api.ContainerRunning {
			continue
		}
		out = append(out, containerSummary{
			ID:      c.ID,
			Names:   []string{"/" + c.Name},
			Image:   imageName(c, byDigest),
			ImageID: c.ImageDigest,
			Created: c.Created.Unix(),
			Ports:   []any{},
			Labels:  map[string]string{},
			State:   dockerState(c.State),
			Status:  containerStatus(c, now),
			Mounts:  []any{},
		})
	}
	return writeJSON(w, out)
}

// dockerState is the daemon's word for a container's state: created,
// running, or exited for a stopped container.
func dockerState(state string) string {
	if state == api.ContainerStopped {
		return "exited"
	}
	return strings.ToLower(state)
}

// imageName is what docker ps shows of a container's image: its
// repo:version ref, another ref, or its digest.
func imageName(c api.Container, byDigest map[string]api.Image) string {
	img, ok := byDigest[c.ImageDigest]
	if !ok {
		return c.ImageDigest
	}
	own := img.Repository + ":" + img.Version
	for _, ref := range img.Refs {
		if ref == own {
			return own
		}
	}
	if len(img.Refs) > 0 {
		return img.Refs[0]
	}
	return img.Digest
}

// containerStatus is the STATUS column, in the daemon's words: "Up 3
// minutes", "Exited (0) 2 hours ago", "Created". A container runs no
// process: it is up from its start to its stop, and exits with 0.
func containerStatus(c api.Container, now time.Time) string {
	since := func() string {
		if c.StateChanged.IsZero() {
			return ""
		}
		return units.HumanDuration(now.Sub(c.StateChanged))
	}
	switch c.State {
	case api.ContainerRunning:
		return strings.TrimSpace("Up " + since())
	case api.ContainerStopped:
		if d := since(); d != "" {
			return "Exited (0) " + d + " ago"
		}
		return "Exited (0)"
	}
	return c.State
}

// startContainer is `docker start`: 204, or 304 when it is running.
func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, api.ContainerRunning)
}

// stopContainer is `docker stop`: 204, or 304 when it is not running.
func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) error {
	return s.setState(w, r, api.ContainerStopped)
}

func (s *Server) setState(w http.ResponseWriter, r *http.Request, state string) error {
	c, err := s.findContainer(r.Context(), mux.Vars(r)[varID])
	if err != nil {
		return err
	}
	switch {
	case state == api.ContainerRunning && c.State == api.ContainerRunning,
		state == api.ContainerStopped && c.State != api.ContainerRunning:
		return writeStatus(w, http.StatusNotModified)
	case state == api.ContainerRunning:
		_, err = s.backend.StartContainer(r.Context(), c.ID)
	default:
		_, err = s.backend.StopContainer(r.Context(), c.ID)
	}
	if err != nil {
		return err
	}
	return writeStatus(w, http.StatusNoContent)
}

// removeContainer is `docker rm`: 204. A running container needs force,
// with the daemon's wording.
func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) error {
	ref := mux.Vars(r)[varID]
	c, err := s.findContainer(r.Context(), ref)
	if err != nil {
		return err
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		if force, err = strconv.ParseBool(v); err != nil {
			return newError(errdefs.ErrInvalidArgument, "invalid value for force: %q", v)
		}
	}
	if c.State == api.ContainerRunning && !force {
		return newError(errdefs.ErrConflict, "cannot remove container \"/%s\": container is running: stop the container before removing or force remove", c.Name)
	}
	if err := s.backend.RemoveContainer(r.Context(), c.ID, force); err != nil {
		return err
	}
	return writeStatus(w, http.StatusNoContent)
}

// commit is `docker commit` (New-ContainerImage): the name is the
// repository, the version the tag when it is a version (1.0 is 1.0.0.0),
// else 1.0.0.0 with the tag added as a ref; the publisher is author, or
// Docker; the description is comment. The answer is 201 with the new
// image's id.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ctr := strings.TrimSpace(q.Get("container"))
	if ctr == "" {
		return newError(errdefs.ErrInvalidArgument, "a container is required")
	}
	repo := strings.TrimSpace(q.Get("repo"))
	if repo == "" {
		return newError(errdefs.ErrInvalidArgument, "providerd needs a repository name to commit a container: docker commit CONTAINER REPOSITORY[:TAG]")
	}
	target := repo
	if t := strings.TrimSpace(q.Get("tag")); t != "" {
		target += ":" + t
	}
	ref, err := parseRef(target)
	if err != nil {
		return err
	}
	if ref.Digest != "" {
		return newError(errdefs.ErrInvalidArgument, "refusing to create a tag with a digest reference")
	}
	c, err := s.findContainer(r.Context(), ctr)
	if err != nil {
		return err
	}
	version, extraTag := "1.0.0.0", ""
	if v, err := find.NormalizeVersion(ref.Tag); err == nil {
		version = v
	} else if ref.Tag != latestTag {
		extraTag = ref.Tag
	}
	publisher := strings.TrimSpace(q.Get("author"))
	if publisher == "" {
		publisher = "Docker"
	}
	img, err := s.backend.Commit(r.Context(), api.CommitRequest{
		Container:   c.ID,
		Name:        ref.Repo,
		Version:     version,
		Publisher:   publisher,
		Description: q.Get("comment"),
	})
	if err != nil {
		return err
	}
	if extraTag != "" {
		if err := s.backend.Tag(r.Context(), img.Digest, ref.Repo, extraTag); err != nil {
			return fmt.Errorf("image %s committed, but tagging it %s failed: %w", img.Digest, ref, err)
		}
	}
	return writeJSONStatus(w, http.StatusCreated, idResponse{ID: img.Digest})
}
