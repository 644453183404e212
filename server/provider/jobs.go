package provider

import (
	"net/http"

	"github.com/containerprovider/containerprovider/api"
)

// install answers POST /v1/images/install with an api.InstallRequest body.
//
// Without follow it is 202 Accepted with the api.Job and the Location of
// the job. With ?follow=true it is 200 with the job's NDJSON event stream
// (see streamEvents), and the same Location. Either way the job runs to its
// end whatever the client does: the request's context only ends the
// stream. Bad input is refused before any job exists.
func (s *Server) install(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, paramFollow)
	if err != nil {
		return err
	}
	follow, err := q.boolean(paramFollow)
	if err != nil {
		return err
	}
	var req api.InstallRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	job, err := s.backend.Install(r.Context(), req)
	if err != nil {
		return err
	}
	if loc, err := s.urlPath(RouteJob, varID, job.ID); err == nil {
		w.Header().Set("Location", loc)
	}
	if !follow {
		return writeJSON(w, http.StatusAccepted, job)
	}
	return s.streamEvents(w, r, job.ID)
}

// listJobs answers GET /v1/jobs: 200 api.JobsResponse, newest first.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	jobs, err := s.backend.Jobs(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.JobsResponse{Jobs: nonNil(jobs)})
}

// getJob answers GET /v1/jobs/{id}: 200 api.Job, or 404.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	job, err := s.backend.Job(r.Context(), vars(r)[varID])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

// jobEvents answers GET /v1/jobs/{id}/events: the job's NDJSON event
// stream, to re-attach to a job. A finished job gives its state event and
// its result event at once.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	return s.streamEvents(w, r, vars(r)[varID])
}

// cancelJob answers POST /v1/jobs/{id}/cancel: 200 with the api.Job as the
// cancellation left it. Its downloaded data stays for a later install.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	job, err := s.backend.Cancel(r.Context(), vars(r)[varID])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}
