package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// The paths of Save, Install -Path, New-ContainerImage and the containers;
// server/provider/routes.go is the route table.
const (
	pathSave       = "/v1/images/save"
	pathLoad       = "/v1/images/load"
	pathCommit     = "/v1/images/commit"
	pathContainers = "/v1/containers"
)

// ContentTypeTar is the content type of image archives and of the files
// copied into a container.
const ContentTypeTar = "application/x-tar"

// The headers (and trailers) that name the image of a streamed save.
const (
	headerImageName    = "X-Image-Name"
	headerImageVersion = "X-Image-Version"
	headerImageDigest  = "X-Image-Digest"
	// headerImage is the whole image, base64 of its JSON.
	headerImage = "X-Image"
)

// SaveStream is the archive of a streamed save (Save-ContainerImage), read
// as it comes. The caller closes it.
//
// A stream that providerd cut because the save failed half-way ends with an
// error from Read, never with io.EOF: io.EOF means the archive is whole.
type SaveStream struct {
	resp *http.Response
	// FileName is the file name providerd proposes,
	// "<Name>-<version with dashes>.tar", or "" when it did not know the
	// image before the first byte.
	FileName string
	// Size is the archive's length, or -1 when it is streamed without one.
	Size int64
	done bool
}

// Read implements io.Reader.
func (s *SaveStream) Read(p []byte) (int, error) {
	n, err := s.resp.Body.Read(p)
	if errors.Is(err, io.EOF) {
		s.done = true
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("save stream: the archive did not arrive whole: %w", err)
	}
	return n, nil
}

// Close implements io.Closer. Closing a stream before its end detaches
// from the save; providerd stops writing.
func (s *SaveStream) Close() error { return s.resp.Body.Close() }

// Image is the saved image, from the headers when providerd knew the
// image before the first byte, and from the trailers once Read has
// returned io.EOF: the whole record, or from an older providerd Name,
// Version and Digest only. Fields it does not know are empty.
func (s *SaveStream) Image() api.Image {
	get := func(k string) string {
		if s.done {
			if v := s.resp.Trailer.Get(k); v != "" {
				return v
			}
		}
		return s.resp.Header.Get(k)
	}
	var img api.Image
	if b, err := base64.StdEncoding.DecodeString(get(headerImage)); err == nil && len(b) > 0 && json.Unmarshal(b, &img) == nil && img.Digest != "" {
		return img
	}
	img = api.Image{Name: get(headerImageName), Version: get(headerImageVersion), Digest: get(headerImageDigest)}
	if hex, ok := strings.CutPrefix(img.Digest, "sha256:"); ok {
		img.ID = hex
	}
	return img
}

// Save saves an image as a stream (Save-ContainerImage without a path on
// the daemon's host): the installed image, or, with req.Source or when it
// is not installed, the image straight from the sources. req.Path and
// req.Force must be empty; see SaveToPath. Errors before the first byte
// (NotFound, InvalidArgument...) come back here; later ones from Read.
func (c *Client) Save(ctx context.Context, req api.SaveRequest) (*SaveStream, error) {
	if req.Path != "" || req.Force {
		return nil, fmt.Errorf("save: a path and force go with SaveToPath: %w", errdefs.ErrInvalidArgument)
	}
	resp, err := c.request(ctx, http.MethodPost, pathSave, nil, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	s := &SaveStream{resp: resp, Size: resp.ContentLength}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		// The base only: a file name never carries a directory.
		if name := path.Base(params["filename"]); name != "." && name != "/" && name != ".." {
			s.FileName = name
		}
	}
	return s, nil
}

// SaveToPath saves an image to req.Path on providerd's host, an absolute
// file or directory path. An existing file is a *Error of class
// AlreadyExists unless req.Force; a missing directory is NotFound unless
// req.Force.
func (c *Client) SaveToPath(ctx context.Context, req api.SaveRequest) (api.SaveResult, error) {
	var res api.SaveResult
	if req.Path == "" {
		return res, fmt.Errorf("save: no path on the daemon's host: %w", errdefs.ErrInvalidArgument)
	}
	err := c.call(ctx, http.MethodPost, pathSave, nil, req, &res, http.StatusOK)
	return res, err
}

// PlanSave plans a save and writes nothing (Save-ContainerImage -WhatIf):
// the answer names the image, its parents and the path.
func (c *Client) PlanSave(ctx context.Context, req api.SaveRequest) (api.SaveResult, error) {
	var res api.SaveResult
	req.WhatIf = true
	err := c.call(ctx, http.MethodPost, pathSave, nil, req, &res, http.StatusOK)
	return res, err
}

// Load installs the archive read from r (Install-ContainerImage -Path with
// a local file): every blob is verified and a bad archive changes nothing.
// When r is a regular *os.File, or has a Len or Size method, its length is
// sent, so that providerd refuses an archive over its cap before reading
// it. The caller closes r.
func (c *Client) Load(ctx context.Context, r io.Reader) (api.LoadResult, error) {
	var res api.LoadResult
	body := rawBody{r: r, contentType: ContentTypeTar, size: readerSize(r)}
	err := c.call(ctx, http.MethodPost, pathLoad, nil, body, &res, http.StatusOK)
	return res, err
}

// LoadFile installs the archive at path on providerd's host, an absolute
// path.
func (c *Client) LoadFile(ctx context.Context, path string) (api.LoadResult, error) {
	var res api.LoadResult
	if path == "" {
		return res, fmt.Errorf("load: no path on the daemon's host: %w", errdefs.ErrInvalidArgument)
	}
	err := c.call(ctx, http.MethodPost, pathLoad, url.Values{"path": {path}}, nil, &res, http.StatusOK)
	return res, err
}

// readerSize is the length of what r has left to read, or -1.
func readerSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case interface{ Size() int64 }:
		// An *io.SectionReader read from its start.
		if s, ok := r.(io.Seeker); ok {
			if off, err := s.Seek(0, io.SeekCurrent); err == nil {
				return v.Size() - off
			}
		}
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return st.Size() - off
	}
	return -1
}

// Commit builds an image from a container (New-ContainerImage). A name and
// version that are taken are a *Error of class AlreadyExists unless
// req.Force.
func (c *Client) Commit(ctx context.Context, req api.CommitRequest) (api.Image, error) {
	var img api.Image
	err := c.call(ctx, http.MethodPost, pathCommit, nil, req, &img, http.StatusCreated)
	return img, err
}

// containersResponse is the body of GET /v1/containers.
type containersResponse struct {
	Containers []api.Container `json:"containers"`
}

// Containers lists the containers.
func (c *Client) Containers(ctx context.Context) ([]api.Container, error) {
	var r containersResponse
	err := c.call(ctx, http.MethodGet, pathContainers, nil, nil, &r, http.StatusOK)
	return r.Containers, err
}

// CreateContainer creates a container on an installed image. A taken name
// is a *Error of class AlreadyExists.
func (c *Client) CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error) {
	var out api.Container
	err := c.call(ctx, http.MethodPost, pathContainers, nil, req, &out, http.StatusCreated)
	return out, err
}

// containerPath is the path of container ref, plus suffix.
func containerPath(ref, suffix string) (string, error) {
	if ref == "" {
		return "", errNoSegment("container id or name")
	}
	return pathContainers + "/" + pathEscape(ref) + suffix, nil
}

// containerCall is a call on one container that answers an api.Container.
func (c *Client) containerCall(ctx context.Context, method, ref, suffix string) (api.Container, error) {
	var out api.Container
	p, err := containerPath(ref, suffix)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, method, p, nil, nil, &out, http.StatusOK)
	return out, err
}

// Container returns one container by id, unique id prefix or name.
func (c *Client) Container(ctx context.Context, ref string) (api.Container, error) {
	return c.containerCall(ctx, http.MethodGet, ref, "")
}

// StartContainer sets a container's state to Running; no process runs.
func (c *Client) StartContainer(ctx context.Context, ref string) (api.Container, error) {
	return c.containerCall(ctx, http.MethodPost, ref, "/start")
}

// StopContainer sets a container's state to Stopped.
func (c *Client) StopContainer(ctx context.Context, ref string) (api.Container, error) {
	return c.containerCall(ctx, http.MethodPost, ref, "/stop")
}

// CopyToContainer extracts the tar read from r under dest, a path in the
// container (providerd roots it there), like `docker cp`. Entries that
// would escape dest, and links, are a *Error of class InvalidArgument. The
// caller closes r.
func (c *Client) CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error {
	p, err := containerPath(ref, "/archive")
	if err != nil {
		return err
	}
	if dest == "" {
		return fmt.Errorf("copy into container %s: no destination path: %w", ref, errdefs.ErrInvalidArgument)
	}
	body := rawBody{r: r, contentType: ContentTypeTar, size: readerSize(r)}
	return c.call(ctx, http.MethodPut, p, url.Values{"path": {dest}}, body, nil, http.StatusOK, http.StatusNoContent)
}

// RemoveContainer removes a container and its directory. A running
// container is a *Error of class Conflict unless force.
func (c *Client) RemoveContainer(ctx context.Context, ref string, force bool) error {
	p, err := containerPath(ref, "")
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, p, url.Values{"force": {strconv.FormatBool(force)}}, nil, nil, http.StatusNoContent)
}
