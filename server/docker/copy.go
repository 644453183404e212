package docker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// headerPathStat is the header of HEAD /containers/{id}/archive: the
// base64 of a pathStat.
const headerPathStat = "X-Docker-Container-Path-Stat"

// maxCopyBody bounds the tar of one docker cp, as API v1's archive cap
// does by default; the provider also bounds what a container holds.
const maxCopyBody = 64 << 30

// pathStat is moby's container.PathStat. Mode carries Go's os.FileMode
// bits, which the CLI decodes as such.
type pathStat struct {
	Name       string      `json:"name"`
	Size       int64       `json:"size"`
	Mode       fs.FileMode `json:"mode"`
	Mtime      time.Time   `json:"mtime"`
	LinkTarget string      `json:"linkTarget"`
}

// archivePath reads the path parameter of the archive routes.
func archivePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if strings.TrimSpace(p) == "" {
		return "", newError(errdefs.ErrInvalidArgument, "path cannot be empty: give the path in the container, e.g. ?path=/app")
	}
	return p, nil
}

// statContainerPath is HEAD /containers/{id}/archive?path=: what `docker
// cp` asks of its destination before it copies, so that it knows whether
// to copy into a directory or onto a file. The answer is 200 with the
// X-Docker-Container-Path-Stat header; no container or nothing at the
// path is 404.
func (s *Server) statContainerPath(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	c, err := s.findContainer(r.Context(), mux.Vars(r)[varID])
	if err != nil {
		return err
	}
	fi, err := s.backend.StatContainerPath(r.Context(), c.ID, p)
	if errdefs.IsNotFound(err) {
		return newError(errdefs.ErrNotFound, "Could not find the file %s in container %s", p, c.Name)
	} else if err != nil {
		return err
	}
	name := fi.Name()
	if name == "." { // the top of the container's files
		name = "/"
	}
	st, err := json.Marshal(pathStat{Name: name, Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime().UTC()})
	if err != nil {
		return fmt.Errorf("encoding the path stat: %w", err)
	}
	w.Header().Set(headerPathStat, base64.StdEncoding.EncodeToString(st))
	w.Header().Set("Content-Type", "application/json")
	return writeStatus(w, http.StatusOK)
}

// copyToContainer is `docker cp SRC CONTAINER:DEST`: PUT
// /containers/{id}/archive?path=DEST with a tar body, which the provider
// extracts under DEST with the code of API v1's archive route (the same
// refusals: entries that escape DEST, links, devices; the same limits).
// The answer is 200 with no body, as the daemon's. noOverwriteDirNonDir
// is what the provider always does (a file never replaces a directory, nor
// the reverse); copyUIDGID changes nothing, since the provider keeps no
// owners. The body may take longer than the server's ReadTimeout: the
// read deadline moves while it arrives.
func (s *Server) copyToContainer(w http.ResponseWriter, r *http.Request) error {
	p, err := archivePath(r)
	if err != nil {
		return err
	}
	c, err := s.findContainer(r.Context(), mux.Vars(r)[varID])
	if err != nil {
		return err
	}
	limited := middleware.LimitBody(w, r, maxCopyBody)
	if limited.Exceeded() {
		return limited.Err()
	}
	body := &deadlineReader{r: limited, rc: http.NewResponseController(w)}
	if err := s.backend.CopyToContainer(r.Context(), c.ID, p, body); err != nil {
		return limited.Cause(err)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"container": c.Name, "dest": p})
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(StreamWriteWindow))
	return writeStatus(w, http.StatusOK)
}
