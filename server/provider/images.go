package provider

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/server/middleware"
)

var (
	findParams   = append([]string{paramName, paramSource}, versionParams...)
	imagesParams = append([]string{paramName, paramPublisher, paramChildOf}, versionParams...)
	removeParams = append([]string{paramName, paramID, paramForce, paramWhatIf}, versionParams...)
)

// find answers GET /v1/find, Find-ContainerImage across the sources:
//
//	/v1/find?name=&requiredVersion=&minimumVersion=&maximumVersion=&allVersions=&source=
//
// 200 is an api.FindResponse; each entry names its source.
func (s *Server) find(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, findParams...)
	if err != nil {
		return err
	}
	vo, err := q.versionOptions()
	if err != nil {
		return err
	}
	res, err := s.backend.Find(r.Context(), provider.FindOptions{
		Name:           q.Get(paramName),
		VersionOptions: vo,
		Source:         q.Get(paramSource),
	})
	if err != nil {
		return err
	}
	res.Images = nonNil(res.Images)
	return writeJSON(w, http.StatusOK, res)
}

// listImages answers GET /v1/images, Get-ContainerImage:
//
//	/v1/images?name=&publisher=&requiredVersion=&minimumVersion=&maximumVersion=&allVersions=&childOf=
//
// 200 is an api.ImagesResponse.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, imagesParams...)
	if err != nil {
		return err
	}
	vo, err := q.versionOptions()
	if err != nil {
		return err
	}
	opts := provider.GetOptions{
		Name:           q.Get(paramName),
		Publisher:      q.Get(paramPublisher),
		VersionOptions: vo,
		ChildOf:        q.Get(paramChildOf),
	}
	if opts.SelectsAll() {
		return s.streamImages(w, r)
	}
	images, err := s.backend.Images(r.Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.ImagesResponse{Images: nonNil(images)})
}

// imagesPage is the number of images that streamImages reads per page.
var imagesPage = 1000

// streamImages answers the listing of every installed image from the
// listing view, page by page and without decoding: the same bytes as
// writeJSON of the api.ImagesResponse, in chunks, each page one write. An
// error after the first page aborts the response, which the client sees
// cut short, never as a complete listing.
func (s *Server) streamImages(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	buf := []byte(`{"images":[`)
	after, started, wrote := "", false, 0
	for {
		page, err := s.backend.ImagesPage(ctx, after, imagesPage)
		if err != nil {
			if started {
				middleware.Log(ctx).WithError(err).Error("image listing cut short")
				panic(http.ErrAbortHandler)
			}
			return err
		}
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for _, img := range page.Images {
			if wrote > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, img...)
			wrote++
		}
		if page.Next == "" {
			buf = append(buf, "]}\n"...)
		}
		if _, err := w.Write(buf); err != nil {
			panic(http.ErrAbortHandler) // the client went away
		}
		if page.Next == "" {
			middleware.AddFields(ctx, logrus.Fields{"images": wrote})
			return nil
		}
		// Each page starts after the last key of the one before.
		buf, after = buf[:0], page.Next
	}
}

// removeImages answers DELETE /v1/images, Remove-ContainerImage, by name
// with version options or by ids:
//
//	/v1/images?name=&requiredVersion=&minimumVersion=&maximumVersion=&allVersions=&force=&whatIf=
//	/v1/images?id=ID[,ID...]&whatIf=
//
// 200 is an api.RemoveResult. A name that selects several images without
// force=true is 409 Conflict with the matches in the envelope; an image
// that others depend on is 409 with the dependents; nothing is removed
// then. whatIf=true checks the same and answers the plan, removing
// nothing. Each id is a digest or a unique id prefix, and they remove
// together: what a client removes after its user confirmed a list. A
// request that names no image, or both a name and an id, is 400 before the
// provider is called: a DELETE that selects nothing must not be read as
// "everything".
func (s *Server) removeImages(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, removeParams...)
	if err != nil {
		return err
	}
	vo, err := q.versionOptions()
	if err != nil {
		return err
	}
	opts := provider.RemoveOptions{Name: q.Get(paramName), VersionOptions: vo}
	if opts.Force, err = q.boolean(paramForce); err != nil {
		return err
	}
	if opts.WhatIf, err = q.boolean(paramWhatIf); err != nil {
		return err
	}
	for _, id := range strings.Split(q.Get(paramID), ",") {
		if id = strings.TrimSpace(id); id != "" {
			opts.IDs = append(opts.IDs, id)
		}
	}
	switch {
	case opts.Name == "" && len(opts.IDs) == 0:
		return fmt.Errorf("remove: give a name (with version options) or an id: %w", errdefs.ErrInvalidArgument)
	case opts.Name != "" && len(opts.IDs) > 0:
		return fmt.Errorf("remove: name and id exclude each other: %w", errdefs.ErrInvalidArgument)
	case len(opts.IDs) > 0 && vo != (api.VersionOptions{}):
		return fmt.Errorf("remove: version options go with a name, not an id: %w", errdefs.ErrInvalidArgument)
	}
	if len(opts.IDs) == 1 {
		opts.ID, opts.IDs = opts.IDs[0], nil
	}
	res, err := s.backend.Remove(r.Context(), opts)
	if err != nil {
		return err
	}
	res.Removed = nonNil(res.Removed)
	return writeJSON(w, http.StatusOK, res)
}
