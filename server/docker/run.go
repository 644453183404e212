package docker

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// Bounds of freshContainers.
const (
	// freshWindow is how long a created container stays fresh: a docker
	// run's attach follows its create at once.
	freshWindow = time.Minute
	// maxFresh bounds the containers remembered; the oldest go first.
	maxFresh = 1024
)

// freshContainers remembers the containers that POST /containers/create
// made and that no request has named since. It tells a `docker run` from
// the other clients that attach: the CLI's run attaches straight after its
// create, before any other call names the container, whereas `docker start
// -a` and `docker attach` inspect the container first. It is safe for
// concurrent use; it forgets a container after freshWindow, and holds at
// most maxFresh.
type freshContainers struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// add remembers the container id, created now.
func (f *freshContainers) add(id string) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[string]time.Time{}
	}
	oldest, oldestAt := "", time.Time{}
	for k, at := range f.ids {
		if now.Sub(at) > freshWindow {
			delete(f.ids, k)
			continue
		}
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = k, at
		}
	}
	if len(f.ids) >= maxFresh {
		delete(f.ids, oldest)
	}
	f.ids[id] = now
}

// forget ends the freshness of container id.
func (f *freshContainers) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ids, id)
}

// take forgets container id and reports whether it was fresh.
func (f *freshContainers) take(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.ids[id]
	delete(f.ids, id)
	return ok && time.Since(at) <= freshWindow
}

// attachContainer is POST /containers/{id}/attach, which providerd cannot
// serve: its containers run no process, so there is nothing to attach to.
// When the container is fresh and still Created, the attach is the second
// step of a `docker run`, which cannot run: the container that the run
// created is removed, and the answer says so. Any other attach (docker
// start -a, on a container that docker create made) leaves the container
// as it is. Both answer 501; the CLI drops the message of a refused
// upgrade and prints "unable to upgrade to tcp, received 501", while the
// log line has the message.
func (s *Server) attachContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.lookupContainer(r.Context(), mux.Vars(r)[varID])
	if err != nil {
		return err
	}
	if !s.fresh.take(c.ID) || c.State != api.ContainerCreated {
		return newError(errdefs.ErrNotImplemented, "attaching to container %s is not supported by providerd: its containers run no process", c.Name)
	}
	if err := s.backend.RemoveContainer(r.Context(), c.ID, false); err != nil {
		middleware.Log(r.Context()).WithError(err).WithField("container", c.Name).Warn("the container of a refused docker run was not removed")
		return newError(errdefs.ErrNotImplemented, "docker run is not supported by providerd: its containers run no process; the container %s that the run created is left as it is (%v)", c.Name, err)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"container": c.Name, "container_removed": true})
	return newError(errdefs.ErrNotImplemented, "docker run is not supported by providerd: its containers run no process, so the container %s that the run created was removed; docker create, docker cp and docker commit build an image", c.Name)
}
