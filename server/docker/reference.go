package docker

import (
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider"
)

// latestTag is the tag of a reference that names none.
const latestTag = "latest"

// imageRef is a Docker image reference turned into the provider's terms:
// the repository (nanoserver, microsoft/iis) and a tag or a digest.
type imageRef struct {
	// Path is what Docker prints after "Pulling from": library/nanoserver.
	Path   string
	Repo   string
	Tag    string
	Digest digest.Digest
}

// String is the familiar form, repo:tag or repo@digest.
func (r imageRef) String() string {
	if r.Digest != "" {
		return r.Repo + "@" + r.Digest.String()
	}
	return r.Repo + ":" + r.Tag
}

// parseRef normalises a Docker reference: docker.io/library/nanoserver,
// library/nanoserver and nanoserver are the repository nanoserver;
// docker.io/microsoft/iis is microsoft/iis; another registry's host is
// dropped, since the provider's sources are not named by host. The tag
// defaults to latest. A reference Docker itself refuses (upper case,
// bad characters) is InvalidArgument with Docker's wording.
func parseRef(s string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(s))
	if err != nil {
		return imageRef{}, newError(errdefs.ErrInvalidArgument, "invalid reference format: %s: %v", s, err)
	}
	ref := imageRef{Path: reference.Path(named)}
	if reference.Domain(named) == "docker.io" {
		ref.Repo = reference.FamiliarName(named)
	} else {
		ref.Repo = ref.Path
	}
	if c, ok := named.(reference.Canonical); ok {
		ref.Digest = c.Digest()
	}
	if t, ok := named.(reference.Tagged); ok {
		ref.Tag = t.Tag()
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = latestTag
	}
	return ref, nil
}

// errNoSuchImage is Docker's not-found wording.
func errNoSuchImage(name string) error {
	return newError(errdefs.ErrNotFound, "No such image: %s", name)
}

// isHex reports whether s is lower-case hexadecimal.
func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// resolved is an installed image and the reference that named it, empty
// when it was named by id or digest.
type resolved struct {
	img api.Image
	ref string
}

// resolveImage finds the installed image that name names, as the daemon
// does, names first: a full digest or "sha256:<hex>" id; else a
// reference, repo:tag (tag latest by default) among the images' refs, or
// repo@digest, or repo:version with the version spelt with fewer parts
// (1.0); else an id prefix of at least provider.MinIDPrefix hex (with or
// without "sha256:") that begins one image's id (a prefix several ids
// share is InvalidArgument). A shorter prefix names nothing, so that the
// name of a container or of an image is never read as an id. Nothing is
// NotFound with Docker's "No such image" wording.
func resolveImage(imgs []api.Image, name string) (resolved, error) {
	name = strings.TrimSpace(name)
	if d, err := digest.Parse(name); err == nil {
		for _, img := range imgs {
			if img.Digest == d.String() {
				return resolved{img: img}, nil
			}
		}
		return resolved{}, errNoSuchImage(name)
	}
	ref, refErr := parseRef(name)
	if refErr == nil {
		if res, ok := resolveRef(imgs, ref); ok {
			return res, nil
		}
	}
	if prefix := strings.TrimPrefix(name, "sha256:"); isHex(prefix) && len(prefix) >= provider.MinIDPrefix {
		var hits []api.Image
		for _, img := range imgs {
			if strings.HasPrefix(img.ID, prefix) {
				hits = append(hits, img)
			}
		}
		switch {
		case len(hits) == 1:
			return resolved{img: hits[0]}, nil
		case len(hits) > 1:
			return resolved{}, newError(errdefs.ErrInvalidArgument, "multiple IDs found with provided prefix: %s", prefix)
		}
		return resolved{}, errNoSuchImage(name)
	}
	if refErr != nil {
		return resolved{}, refErr
	}
	return resolved{}, errNoSuchImage(name)
}

// resolveRef finds the installed image that ref names among imgs.
func resolveRef(imgs []api.Image, ref imageRef) (resolved, bool) {
	for _, img := range imgs {
		if ref.Digest != "" {
			if img.Digest == ref.Digest.String() && img.Repository == ref.Repo {
				return resolved{img: img}, true
			}
			continue
		}
		if slices.Contains(img.Refs, ref.String()) {
			return resolved{img: img, ref: ref.String()}, true
		}
	}
	// A tag that is the version in another spelling (1.0 for 1.0.0.0), as
	// the provider pads the version of docker commit's tag.
	if v, err := find.NormalizeVersion(ref.Tag); err == nil && ref.Digest == "" {
		for _, img := range imgs {
			own := img.Repository + ":" + img.Version
			if img.Repository == ref.Repo && img.Version == v && slices.Contains(img.Refs, own) {
				return resolved{img: img, ref: own}, true
			}
		}
	}
	return resolved{}, false
}

// shortID is the 12 hex the CLI shows of an id or digest.
func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
