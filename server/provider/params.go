package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// The query parameters of API v1.
const (
	paramName            = "name"
	paramPublisher       = "publisher"
	paramRequiredVersion = "requiredVersion"
	paramMinimumVersion  = "minimumVersion"
	paramMaximumVersion  = "maximumVersion"
	paramAllVersions     = "allVersions"
	paramSource          = "source"
	paramChildOf         = "childOf"
	paramID              = "id"
	paramFollow          = "follow"
	paramPath            = "path"
	paramForce           = "force"
	paramWhatIf          = "whatIf"
)

// versionParams are OneGet's version options as query parameters.
var versionParams = []string{paramRequiredVersion, paramMinimumVersion, paramMaximumVersion, paramAllVersions}

// query is the validated query of a request.
type query struct{ url.Values }

// parseQuery refuses a query with a parameter outside known or given more
// than once, with InvalidArgument: a typo must not widen a search or a
// removal silently.
func parseQuery(r *http.Request, known ...string) (query, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, fmt.Errorf("query %q: %v: %w", r.URL.RawQuery, err, errdefs.ErrInvalidArgument)
	}
	for k, v := range q {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return query{}, fmt.Errorf("%s %s takes no query parameter, got %q: %w", r.Method, r.URL.Path, k, errdefs.ErrInvalidArgument)
			}
			return query{}, fmt.Errorf("unknown query parameter %q (known: %v): %w", k, known, errdefs.ErrInvalidArgument)
		}
		if len(v) > 1 {
			return query{}, fmt.Errorf("query parameter %q given %d times: %w", k, len(v), errdefs.ErrInvalidArgument)
		}
	}
	return query{q}, nil
}

// has reports whether the parameter is present, even empty.
func (q query) has(k string) bool { _, ok := q.Values[k]; return ok }

// boolean reads a switch: absent is false, present and empty ("?follow")
// is true, else it must parse as a boolean.
func (q query) boolean(k string) (bool, error) {
	v, ok := q.Values[k]
	if !ok {
		return false, nil
	}
	if v[0] == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, fmt.Errorf("query parameter %s=%q: not a boolean: %w", k, v[0], errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// versionOptions reads OneGet's version options. The provider validates
// their combination.
func (q query) versionOptions() (api.VersionOptions, error) {
	all, err := q.boolean(paramAllVersions)
	if err != nil {
		return api.VersionOptions{}, err
	}
	return api.VersionOptions{
		RequiredVersion: q.Get(paramRequiredVersion),
		MinimumVersion:  q.Get(paramMinimumVersion),
		MaximumVersion:  q.Get(paramMaximumVersion),
		AllVersions:     all,
	}, nil
}

// decodeJSON decodes the body of r, at most MaxBodySize bytes, into v: one
// JSON value of v's type, no unknown field, nothing after it.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := middleware.LimitBody(w, r, MaxBodySize)
	if body.Exceeded() {
		return body.Err()
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("request body: empty, want a JSON object: %w", errdefs.ErrInvalidArgument)
		}
		return body.Cause(fmt.Errorf("request body: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return body.Cause(fmt.Errorf("request body: after the JSON object: %v: %w", err, errdefs.ErrInvalidArgument))
		}
		return fmt.Errorf("request body: data after the JSON object: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// vars returns the route variables of r.
func vars(r *http.Request) map[string]string { return mux.Vars(r) }
