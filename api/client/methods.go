package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/containerprovider/containerprovider/api"
)

// The paths of API v1; server/provider/routes.go is the route table.
const (
	pathHealth  = "/healthz"
	pathMetrics = "/metrics"
	pathSources = "/v1/sources"
	pathFind    = "/v1/find"
	pathInstall = "/v1/images/install"
	pathImages  = "/v1/images"
	pathJobs    = "/v1/jobs"
)

// FindOptions are the options of Find: OneGet's, plus a source.
type FindOptions struct {
	// Name matches case-insensitively, with * and ? wildcards.
	Name string
	api.VersionOptions
	// Source limits the search to one source; empty searches all.
	Source string
}

// ImagesOptions filter Images (Get-ContainerImage). With no version
// option every installed version is listed.
type ImagesOptions struct {
	Name      string
	Publisher string
	api.VersionOptions
	// ChildOf keeps the images whose parent is the given image: a name,
	// "name:version", a digest or an id prefix.
	ChildOf string
}

// RemoveOptions select the images to remove: Name with version options,
// or ID (a digest or an id prefix).
type RemoveOptions struct {
	Name string
	api.VersionOptions
	// ID, and IDs, name images by digest or id prefix; they remove
	// together.
	ID  string
	IDs []string
	// Force removes every image that Name selects; without it, a Name
	// that selects several is refused (Conflict, API.Matches lists them).
	Force bool
	// WhatIf asks for the plan: nothing is removed.
	WhatIf bool
}

// setVersions adds the version options that are set to q.
func setVersions(q url.Values, v api.VersionOptions) {
	set(q, "requiredVersion", v.RequiredVersion)
	set(q, "minimumVersion", v.MinimumVersion)
	set(q, "maximumVersion", v.MaximumVersion)
	if v.AllVersions {
		q.Set("allVersions", "true")
	}
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// Health calls GET /healthz.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	err := c.call(ctx, http.MethodGet, pathHealth, nil, nil, &h, http.StatusOK)
	return h, err
}

// Metrics returns the Prometheus text exposition of GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.request(ctx, http.MethodGet, pathMetrics, nil, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", pathMetrics, err)
	}
	return string(data), nil
}

// Sources lists the sources, without their passwords.
func (c *Client) Sources(ctx context.Context) ([]api.Source, error) {
	var r api.SourcesResponse
	err := c.call(ctx, http.MethodGet, pathSources, nil, nil, &r, http.StatusOK)
	return r.Sources, err
}

// AddSource adds a source; a *Error of class AlreadyExists when the name is
// taken.
func (c *Client) AddSource(ctx context.Context, s api.Source) (api.Source, error) {
	var out api.Source
	err := c.call(ctx, http.MethodPost, pathSources, nil, s, &out, http.StatusCreated)
	return out, err
}

// RemoveSource removes a source; a *Error of class NotFound when there is
// none by that name.
func (c *Client) RemoveSource(ctx context.Context, name string) error {
	if name == "" {
		return errNoSegment("source name")
	}
	return c.call(ctx, http.MethodDelete, pathSources+"/"+pathEscape(name), nil, nil, nil, http.StatusNoContent)
}

// RefreshSource syncs the index of a source now and returns the source
// with the state of its index; a *Error of class NotFound when there is
// none by that name.
func (c *Client) RefreshSource(ctx context.Context, name string) (api.Source, error) {
	if name == "" {
		return api.Source{}, errNoSegment("source name")
	}
	var out api.Source
	err := c.call(ctx, http.MethodPost, pathSources+"/"+pathEscape(name)+"/refresh", nil, nil, &out, http.StatusOK)
	return out, err
}

// Find searches the sources with OneGet's rules (Find-ContainerImage).
// Warnings, if any, name the sources whose index is incomplete or stale.
func (c *Client) Find(ctx context.Context, o FindOptions) (api.FindResponse, error) {
	q := url.Values{}
	set(q, "name", o.Name)
	setVersions(q, o.VersionOptions)
	set(q, "source", o.Source)
	var r api.FindResponse
	err := c.call(ctx, http.MethodGet, pathFind, q, nil, &r, http.StatusOK)
	return r, err
}

// Install starts an install job and returns it at once (202). The job runs
// in providerd whatever the client does next.
func (c *Client) Install(ctx context.Context, req api.InstallRequest) (api.Job, error) {
	var job api.Job
	err := c.call(ctx, http.MethodPost, pathInstall, nil, req, &job, http.StatusAccepted)
	return job, err
}

// InstallFollow starts an install job and streams its events. The caller
// closes the stream. Closing it, or ending ctx, detaches from the job; it
// never cancels it.
func (c *Client) InstallFollow(ctx context.Context, req api.InstallRequest) (*EventStream, error) {
	resp, err := c.request(ctx, http.MethodPost, pathInstall, url.Values{"follow": {"true"}}, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	id := ""
	if loc := resp.Header.Get("Location"); loc != "" {
		id = path.Base(loc)
	}
	return newEventStream(resp, id), nil
}

// Events re-attaches to a job: its events from its current state on, to
// its result. A finished job gives its state and result events at once.
func (c *Client) Events(ctx context.Context, jobID string) (*EventStream, error) {
	if jobID == "" {
		return nil, errNoSegment("job id")
	}
	resp, err := c.request(ctx, http.MethodGet, pathJobs+"/"+pathEscape(jobID)+"/events", nil, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return newEventStream(resp, jobID), nil
}

// Jobs lists the jobs, newest first.
func (c *Client) Jobs(ctx context.Context) ([]api.Job, error) {
	var r api.JobsResponse
	err := c.call(ctx, http.MethodGet, pathJobs, nil, nil, &r, http.StatusOK)
	return r.Jobs, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (api.Job, error) {
	var job api.Job
	if id == "" {
		return job, errNoSegment("job id")
	}
	err := c.call(ctx, http.MethodGet, pathJobs+"/"+pathEscape(id), nil, nil, &job, http.StatusOK)
	return job, err
}

// Cancel stops a job and returns it as the cancellation left it.
func (c *Client) Cancel(ctx context.Context, id string) (api.Job, error) {
	var job api.Job
	if id == "" {
		return job, errNoSegment("job id")
	}
	err := c.call(ctx, http.MethodPost, pathJobs+"/"+pathEscape(id)+"/cancel", nil, nil, &job, http.StatusOK)
	return job, err
}

// Images lists the installed images that match o (Get-ContainerImage).
func (c *Client) Images(ctx context.Context, o ImagesOptions) ([]api.Image, error) {
	q := url.Values{}
	set(q, "name", o.Name)
	set(q, "publisher", o.Publisher)
	setVersions(q, o.VersionOptions)
	set(q, "childOf", o.ChildOf)
	var r api.ImagesResponse
	err := c.call(ctx, http.MethodGet, pathImages, q, nil, &r, http.StatusOK)
	return r.Images, err
}

// Remove removes the selected images and collects the blobs nothing
// references any more. An image that others depend on gives a *Error of
// class Conflict whose API.Dependents name them, and a name that selects
// several images without Force one whose API.Matches list them; nothing
// is removed then. With WhatIf, the result is the plan.
func (c *Client) Remove(ctx context.Context, o RemoveOptions) (api.RemoveResult, error) {
	q := url.Values{}
	set(q, "name", o.Name)
	setVersions(q, o.VersionOptions)
	var ids []string
	for _, id := range append([]string{o.ID}, o.IDs...) {
		if id != "" {
			ids = append(ids, id)
		}
	}
	set(q, "id", strings.Join(ids, ","))
	if o.Force {
		q.Set("force", "true")
	}
	if o.WhatIf {
		q.Set("whatIf", "true")
	}
	var r api.RemoveResult
	err := c.call(ctx, http.MethodDelete, pathImages, q, nil, &r, http.StatusOK)
	return r, err
}
