package catalog

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// manifestParams are the validated variables of a manifest route.
func manifestParams(r *http.Request) (string, reference, error) {
	repo, err := repoName(r)
	if err != nil {
		return "", reference{}, err
	}
	ref, err := parseReference(vars(r)[varReference])
	if err != nil {
		return "", reference{}, err
	}
	return repo, ref, nil
}

// setManifestHeaders sets the headers of a manifest read.
func setManifestHeaders(w http.ResponseWriter, rec catalog.ManifestRecord) {
	h := w.Header()
	h.Set("Content-Type", rec.MediaType)
	h.Set(headerContentDigest, rec.Digest.String())
	h.Set("Content-Length", strconv.FormatInt(rec.Size, 10))
	h.Set("ETag", etag(rec.Digest))
}

// getManifest answers GET and HEAD /v2/<name>/manifests/<reference>: 200
// with Content-Type the media type the manifest was pushed with,
// Docker-Content-Digest and Content-Length; 404 MANIFEST_UNKNOWN.
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request) error {
	repo, ref, err := manifestParams(r)
	if err != nil {
		return err
	}
	if r.Method == http.MethodHead {
		rec, err := s.reg.ResolveManifest(r.Context(), repo, ref.String())
		if err != nil {
			return err
		}
		setManifestHeaders(w, rec)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	rec, ra, err := s.reg.GetManifest(r.Context(), repo, ref.String())
	if err != nil {
		return err
	}
	defer ra.Close()
	setManifestHeaders(w, rec)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, io.NewSectionReader(ra, 0, rec.Size)); err != nil {
		// The status is out: the adapter can only log this.
		return fmt.Errorf("repository %s: manifest %s: sending: %w", repo, rec.Digest, err)
	}
	return nil
}

// putManifest answers PUT /v2/<name>/manifests/<reference>. The body is
// read whole, at most the maximum manifest size: a bigger one gets 413 and
// changes nothing. The registry validates it (MANIFEST_INVALID,
// MANIFEST_BLOB_UNKNOWN for a missing distributable blob, DIGEST_INVALID
// when pushed by a digest it does not have). Success is 201 with the
// manifest's Location by digest, Docker-Content-Digest, and OCI-Subject
// when the manifest has a subject.
func (s *Server) putManifest(w http.ResponseWriter, r *http.Request) error {
	repo, ref, err := manifestParams(r)
	if err != nil {
		return err
	}
	max := s.opts.maxManifestSize
	body, err := middleware.ReadAll(w, r, max)
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return fmt.Errorf("repository %s: manifest %s: larger than the limit of %d bytes: %w: %w",
				repo, ref, max, catalog.ErrManifestTooLarge, errdefs.ErrTooLarge)
		}
		return err
	}
	rec, err := s.reg.PutManifest(r.Context(), repo, ref.String(), trimMediaType(r.Header.Get("Content-Type")), body)
	if err != nil {
		return err
	}
	loc, err := s.urlFor(RouteManifest, varName, repo, varReference, rec.Digest.String())
	if err != nil {
		return err
	}
	middleware.AddFields(r.Context(), logrus.Fields{"digest": rec.Digest})
	h := w.Header()
	h.Set("Location", loc)
	h.Set(headerContentDigest, rec.Digest.String())
	if rec.Subject != "" {
		h.Set(headerOCISubject, rec.Subject.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteManifest answers DELETE /v2/<name>/manifests/<reference>: 202. A
// tag deletes the tag; a digest deletes the manifest and its tags.
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request) error {
	repo, ref, err := manifestParams(r)
	if err != nil {
		return err
	}
	if err := s.reg.DeleteManifest(r.Context(), repo, ref.String()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
