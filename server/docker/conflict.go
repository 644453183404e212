package docker

import (
	"errors"
	"net/http"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
)

// removeDependents answers a removal that the provider refused because
// others depend on the image (a *provider.DependentsError), as the daemon
// answers `docker rmi`, with its wording, naming the container:
//
//	conflict: unable to delete 5b1c0a3e6f2d (cannot be forced) - image has dependent child images
//	conflict: unable to remove repository reference "nanoserver:10.0.10586.0" (must force) - container c1 is using its referenced image 5b1c0a3e6f2d
//	conflict: unable to delete 5b1c0a3e6f2d (must be forced) - image is being used by stopped container c1
//	conflict: unable to delete 5b1c0a3e6f2d (cannot be forced) - image is being used by running container c1
//
// A child image blocks the removal, forced or not: the provider keeps the
// parent of every image. A container does too, but the provider keeps the
// image of every container, so where the daemon would delete the image
// (force, and no running container when it is named by id), providerd
// untags it instead, as the daemon does first: every ref of the image goes,
// each printed "Untagged", and the image stays, without a name, for its
// containers, until they are removed. An image that has no ref left to
// untag cannot be forced, and the message says why. Other errors are
// returned as they are.
func (s *Server) removeDependents(w http.ResponseWriter, r *http.Request, err error, res resolved, force bool) error {
	var de *provider.DependentsError
	if !errors.As(err, &de) {
		return err
	}
	img := res.img
	id := shortID(img.ID)
	for _, d := range de.Dependents {
		if !strings.HasPrefix(d, "container ") {
			return newError(errdefs.ErrConflict, "conflict: unable to delete %s (cannot be forced) - image has dependent child images", id)
		}
	}
	ctrs, cerr := s.backend.Containers(r.Context())
	if cerr != nil {
		return cerr
	}
	var user *api.Container
	for i, c := range ctrs {
		if c.ImageDigest != img.Digest {
			continue
		}
		if user == nil || c.State == api.ContainerRunning && user.State != api.ContainerRunning {
			user = &ctrs[i]
		}
	}
	if user == nil {
		return err // the container went meanwhile: the provider's own words
	}
	state := "stopped"
	if user.State == api.ContainerRunning {
		state = "running"
	}
	switch {
	case len(img.Refs) == 0:
		return newError(errdefs.ErrConflict, "conflict: unable to delete %s (cannot be forced) - image is being used by %s container %s, and providerd keeps the image of a container until the container is removed", id, state, user.Name)
	case !force && res.ref != "":
		return newError(errdefs.ErrConflict, "conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", res.ref, user.Name, id)
	case res.ref == "" && state == "running":
		return newError(errdefs.ErrConflict, "conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", id, user.Name)
	case !force:
		return newError(errdefs.ErrConflict, "conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", id, user.Name)
	}
	refs, err := s.backend.UntagUsedImage(r.Context(), img.Digest)
	if err != nil {
		return err
	}
	out := []deleteItem{}
	for _, ref := range refs {
		out = append(out, deleteItem{Untagged: ref})
	}
	for _, d := range repoDigests(api.Image{Refs: refs, Digest: img.Digest}) {
		out = append(out, deleteItem{Untagged: d})
	}
	return writeJSON(w, out)
}
