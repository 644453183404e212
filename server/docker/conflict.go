package docker

import (
	"errors"
	"net/http"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
)

// removeConflict rewrites the provider's refusal to remove an image that
// others depend on with the daemon's wording, naming the container:
//
//	conflict: unable to remove repository reference "nanoserver:10.0.10586.0" (must force) - container c1 is using its referenced image 5b1c0a3e6f2d
//	conflict: unable to delete 5b1c0a3e6f2d (must be forced) - image is being used by stopped container c1
//	conflict: unable to delete 5b1c0a3e6f2d (cannot be forced) - image has dependent child images
//
// The provider's -Force does not skip the check, so neither does
// docker rmi -f. Other errors are returned as they are.
func (s *Server) removeConflict(r *http.Request, err error, res resolved) error {
	var de *provider.DependentsError
	if !errors.As(err, &de) {
		return err
	}
	id := shortID(res.img.ID)
	var container string
	for _, d := range de.Dependents {
		if name, ok := strings.CutPrefix(d, "container "); ok {
			container = name
			break
		}
	}
	if container == "" {
		return newError(errdefs.ErrConflict, "conflict: unable to delete %s (cannot be forced) - image has dependent child images", id)
	}
	if res.ref != "" {
		return newError(errdefs.ErrConflict, "conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", res.ref, container, id)
	}
	state := "stopped"
	if ctrs, cerr := s.backend.Containers(r.Context()); cerr == nil {
		for _, c := range ctrs {
			if (c.Name == container || c.ID == container) && c.State == api.ContainerRunning {
				state = "running"
			}
		}
	}
	return newError(errdefs.ErrConflict, "conflict: unable to delete %s (must be forced) - image is being used by %s container %s", id, state, container)
}
