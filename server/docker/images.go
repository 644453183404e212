package docker

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
)

// imageSummary is moby's ImageSummary (GET /images/json).
type imageSummary struct {
	ID          string            `json:"Id"`
	ParentID    string            `json:"ParentId"`
	RepoTags    []string          `json:"RepoTags"`
	RepoDigests []string          `json:"RepoDigests"`
	Created     int64             `json:"Created"`
	Size        int64             `json:"Size"`
	SharedSize  int64             `json:"SharedSize"`
	Labels      map[string]string `json:"Labels"`
	Containers  int64             `json:"Containers"`
}

// The filters of GET /images/json: those supported, and Docker's others.
var (
	imageFilters      = []string{"dangling", "reference"}
	knownImageFilters = []string{"before", "since", "label", "until"}
)

// allImages lists every installed image.
func (s *Server) allImages(r *http.Request) ([]api.Image, error) {
	return s.backend.Images(r.Context(), provider.GetOptions{})
}

// imageID is the Docker id of an image: its manifest digest.
func imageID(img api.Image) string { return img.Digest }

func parentID(img api.Image) string {
	if img.ParentImage == nil {
		return ""
	}
	return img.ParentImage.Digest
}

// repoDigests are repo@digest for each repository that refers to img.
func repoDigests(img api.Image) []string {
	out := []string{}
	for _, ref := range img.Refs {
		repo, _, _ := strings.Cut(ref, ":")
		d := repo + "@" + img.Digest
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// matchReference is the reference filter: a pattern with a tag matches
// "repo:tag", one without matches the repository, both as path.Match
// globs.
func matchReference(patterns []string, ref string) bool {
	repo, _, _ := strings.Cut(ref, ":")
	for _, p := range patterns {
		target := repo
		if strings.Contains(p[strings.LastIndex(p, "/")+1:], ":") {
			target = ref
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}

// listImages is `docker images`: one summary per image, with every ref in
// RepoTags, which the CLI shows one row each.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r, imageFilters, knownImageFilters)
	if err != nil {
		return err
	}
	dangling, hasDangling, err := f.boolFilter("dangling")
	if err != nil {
		return err
	}
	for _, p := range f["reference"] {
		if _, err := path.Match(p, ""); err != nil {
			return newError(errdefs.ErrInvalidArgument, "invalid filter 'reference=%s': %v", p, err)
		}
	}
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	out := []imageSummary{}
	for _, img := range imgs {
		if hasDangling && dangling != (len(img.Refs) == 0) {
			continue
		}
		tags := slices.Clone(img.Refs)
		if refs := f["reference"]; len(refs) > 0 {
			tags = slices.DeleteFunc(tags, func(t string) bool { return !matchReference(refs, t) })
			if len(tags) == 0 {
				continue
			}
		}
		if tags == nil {
			tags = []string{}
		}
		out = append(out, imageSummary{
			ID:          imageID(img),
			ParentID:    parentID(img),
			RepoTags:    tags,
			RepoDigests: repoDigests(img),
			Created:     img.Created.Unix(),
			Size:        img.Size,
			SharedSize:  -1,
			Labels:      map[string]string{},
			Containers:  -1,
		})
	}
	// Newest first, as the daemon lists them.
	slices.SortStableFunc(out, func(a, b imageSummary) int { return int(b.Created - a.Created) })
	return writeJSON(w, out)
}

// imageInspect is the subset of moby's ImageInspect that providerd knows.
type imageInspect struct {
	ID          string        `json:"Id"`
	RepoTags    []string      `json:"RepoTags"`
	RepoDigests []string      `json:"RepoDigests"`
	Parent      string        `json:"Parent"`
	Comment     string        `json:"Comment"`
	Created     string        `json:"Created"`
	Author      string        `json:"Author"`
	Os          string        `json:"Os"`
	OsVersion   string        `json:"OsVersion,omitempty"`
	Size        int64         `json:"Size"`
	RootFS      rootFS        `json:"RootFS"`
	Metadata    imageMetadata `json:"Metadata"`
}

type rootFS struct {
	Type string `json:"Type"`
}

type imageMetadata struct {
	LastTagTime string `json:"LastTagTime,omitempty"`
}

func (s *Server) inspectImage(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	res, err := resolveImage(imgs, mux.Vars(r)[varName])
	if err != nil {
		return err
	}
	img := res.img
	tags := img.Refs
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, imageInspect{
		ID:          imageID(img),
		RepoTags:    tags,
		RepoDigests: repoDigests(img),
		Parent:      parentID(img),
		Comment:     img.Description,
		Created:     img.Created.UTC().Format(time.RFC3339Nano),
		Author:      img.Publisher,
		Os:          osType,
		OsVersion:   img.OSVersion,
		Size:        img.Size,
		RootFS:      rootFS{Type: "layers"},
		Metadata:    imageMetadata{LastTagTime: img.Installed.UTC().Format(time.RFC3339Nano)},
	})
}

// historyItem is moby's HistoryResponseItem.
type historyItem struct {
	ID        string   `json:"Id"`
	Created   int64    `json:"Created"`
	CreatedBy string   `json:"CreatedBy"`
	Tags      []string `json:"Tags"`
	Size      int64    `json:"Size"`
	Comment   string   `json:"Comment"`
}

// maxHistory bounds the parent chain that history walks.
const maxHistory = 64

// imageHistory is `docker history`: the image, then its parents, each
// image adding one layer to its parent's, so that each row's Size is what
// the image adds. A parent that is not installed ends the chain with a
// "<missing>" row, as the daemon shows layers it has no image for.
func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	res, err := resolveImage(imgs, mux.Vars(r)[varName])
	if err != nil {
		return err
	}
	byDigest := map[string]api.Image{}
	for _, img := range imgs {
		byDigest[img.Digest] = img
	}
	out := []historyItem{}
	img := res.img
	for range maxHistory {
		tags := img.Refs
		if tags == nil {
			tags = []string{}
		}
		item := historyItem{
			ID:      imageID(img),
			Created: img.Created.Unix(),
			Tags:    tags,
			Size:    img.Size,
			Comment: img.Description,
		}
		if img.ParentImage == nil {
			out = append(out, item)
			break
		}
		parent, ok := byDigest[img.ParentImage.Digest]
		if !ok {
			out = append(out, item, historyItem{
				ID:      "<missing>",
				Tags:    []string{},
				Comment: fmt.Sprintf("%s %s (not installed)", img.ParentImage.Name, img.ParentImage.Version),
			})
			break
		}
		if d := img.Size - parent.Size; d >= 0 {
			item.Size = d
		}
		out = append(out, item)
		img = parent
	}
	return writeJSON(w, out)
}

// tagImage is `docker tag`. The provider names an image by its repository
// and version and keeps the latest ref itself; it offers no call that adds
// one reference, so the route answers 501 once the source image and the
// new name are checked.
func (s *Server) tagImage(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	if _, err := resolveImage(imgs, mux.Vars(r)[varName]); err != nil {
		return err
	}
	q := r.URL.Query()
	target := q.Get("repo")
	if t := q.Get("tag"); t != "" {
		target += ":" + t
	}
	if _, err := parseRef(target); err != nil {
		return err
	}
	return newError(errdefs.ErrNotImplemented, "tagging an image is not supported by providerd: an image is named by its repository and version")
}

// deleteItem is moby's ImageDeleteResponseItem.
type deleteItem struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// deleteImage is `docker rmi`: by repo:tag, full or short id, or digest.
// The refs the provider keeps for an image, repo:version and repo:latest,
// name the image itself, so removing by either removes the image and
// lists every ref as Untagged, then the image as Deleted. A container or a
// child image that depends on it gives 409 with the daemon's wording.
func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	name := mux.Vars(r)[varName]
	res, err := resolveImage(imgs, name)
	if err != nil {
		return err
	}
	img := res.img
	own := []string{img.Repository + ":" + img.Version, img.Repository + ":" + latestTag}
	if res.ref != "" && !slices.Contains(own, res.ref) && len(img.Refs) > 1 {
		return newError(errdefs.ErrNotImplemented, "untagging %s alone is not supported by providerd: remove the image by id", res.ref)
	}
	result, err := s.backend.Remove(r.Context(), provider.RemoveOptions{ID: img.Digest})
	if err != nil {
		return s.removeConflict(r, err, res)
	}
	out := []deleteItem{}
	for _, rm := range result.Removed {
		for _, ref := range rm.Refs {
			out = append(out, deleteItem{Untagged: ref})
		}
		for _, d := range repoDigests(rm) {
			out = append(out, deleteItem{Untagged: d})
		}
		out = append(out, deleteItem{Deleted: rm.Digest})
	}
	return writeJSON(w, out)
}
