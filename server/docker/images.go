package docker

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
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
		digests := repoDigests(img)
		if refs := f["reference"]; len(refs) > 0 {
			tags = slices.DeleteFunc(tags, func(t string) bool { return !matchReference(refs, t) })
			// A repo@digest matches by its repository, as the daemon
			// filters them, so that no other repository shows as <none>.
			digests = slices.DeleteFunc(digests, func(d string) bool {
				repo, _, _ := strings.Cut(d, "@")
				return !matchReference(refs, repo)
			})
			if len(tags) == 0 && len(digests) == 0 {
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
			RepoDigests: digests,
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
	ID           string        `json:"Id"`
	RepoTags     []string      `json:"RepoTags"`
	RepoDigests  []string      `json:"RepoDigests"`
	Parent       string        `json:"Parent"`
	Comment      string        `json:"Comment"`
	Created      string        `json:"Created"`
	Author       string        `json:"Author"`
	Os           string        `json:"Os"`
	OsVersion    string        `json:"OsVersion,omitempty"`
	Architecture string        `json:"Architecture"`
	Size         int64         `json:"Size"`
	RootFS       rootFS        `json:"RootFS"`
	Metadata     imageMetadata `json:"Metadata"`
	Config       imageConfig   `json:"Config"`
}

// imageConfig is the part of moby's container config that inspect fills:
// the labels, which carry what verified the image's signature.
type imageConfig struct {
	Labels map[string]string `json:"Labels"`
}

// LabelSigned is the label of docker inspect that says what verified the
// image when it was installed: "key sha256:<hex>", "unverified" or
// "unsigned" (api.Image.Signed).
const LabelSigned = "dev.containerprovider.image.signed"

type rootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
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
	cfg, err := s.backend.ImageConfig(r.Context(), img.Digest)
	if err != nil {
		return err
	}
	layers := []string{}
	for _, d := range cfg.RootFS.DiffIDs {
		layers = append(layers, d.String())
	}
	tags := img.Refs
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, imageInspect{
		ID:           imageID(img),
		RepoTags:     tags,
		RepoDigests:  repoDigests(img),
		Parent:       parentID(img),
		Comment:      img.Description,
		Created:      img.Created.UTC().Format(time.RFC3339Nano),
		Author:       img.Publisher,
		Os:           osType,
		OsVersion:    img.OSVersion,
		Architecture: cfg.Architecture,
		Size:         img.Size,
		RootFS:       rootFS{Type: "layers", Layers: layers},
		Metadata:     imageMetadata{LastTagTime: img.Installed.UTC().Format(time.RFC3339Nano)},
		Config:       imageConfig{Labels: map[string]string{LabelSigned: img.Signed}},
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

// imageHistory is `docker history`: one row per entry of the image
// config's history, newest first, parents included. Empty-layer entries
// are rows of size 0, as the daemon shows them. The row that ends the
// history of an image of the parent chain carries that image's id, tags and
// size (what it adds to its parent); the others are "<missing>", as the
// daemon shows layers it has no image for. Without a config history, the
// rows are the images of the chain (see chainHistory).
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
	chain := []api.Image{res.img}
	for img := res.img; img.ParentImage != nil && len(chain) < maxHistory; {
		parent, ok := byDigest[img.ParentImage.Digest]
		if !ok {
			break
		}
		chain = append(chain, parent)
		img = parent
	}
	cfg, err := s.backend.ImageConfig(r.Context(), res.img.Digest)
	if err != nil {
		return err
	}
	if len(cfg.History) == 0 {
		return writeJSON(w, chainHistory(chain, byDigest))
	}
	// The image whose history ends at each entry: a parent's config
	// history is a prefix of its child's.
	tops := map[int]int{len(cfg.History) - 1: 0}
	for i, img := range chain[1:] {
		pc, err := s.backend.ImageConfig(r.Context(), img.Digest)
		if err != nil {
			return err
		}
		if n := len(pc.History); n > 0 && n <= len(cfg.History) {
			if _, ok := tops[n-1]; !ok {
				tops[n-1] = i + 1
			}
		}
	}
	out := []historyItem{}
	for k := len(cfg.History) - 1; k >= 0; k-- {
		h := cfg.History[k]
		item := historyItem{ID: "<missing>", CreatedBy: h.CreatedBy, Tags: []string{}, Comment: h.Comment}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if c, ok := tops[k]; ok {
			img := chain[c]
			item.ID = imageID(img)
			if img.Refs != nil {
				item.Tags = img.Refs
			}
			item.Size = addedSize(img, byDigest)
			if item.Created == 0 {
				item.Created = img.Created.Unix()
			}
			if item.Comment == "" {
				item.Comment = img.Description
			}
		}
		out = append(out, item)
	}
	return writeJSON(w, out)
}

// addedSize is what img adds to its installed parent's size.
func addedSize(img api.Image, byDigest map[string]api.Image) int64 {
	if img.ParentImage == nil {
		return img.Size
	}
	if parent, ok := byDigest[img.ParentImage.Digest]; ok && img.Size >= parent.Size {
		return img.Size - parent.Size
	}
	return img.Size
}

// chainHistory is one row per image of chain, each adding its size to its
// parent's. A parent that is not installed ends the rows with
// "<missing>".
func chainHistory(chain []api.Image, byDigest map[string]api.Image) []historyItem {
	out := []historyItem{}
	for _, img := range chain {
		tags := img.Refs
		if tags == nil {
			tags = []string{}
		}
		out = append(out, historyItem{
			ID:      imageID(img),
			Created: img.Created.Unix(),
			Tags:    tags,
			Size:    addedSize(img, byDigest),
			Comment: img.Description,
		})
	}
	last := chain[len(chain)-1]
	if last.ParentImage != nil {
		if _, ok := byDigest[last.ParentImage.Digest]; !ok {
			out = append(out, historyItem{
				ID:      "<missing>",
				Tags:    []string{},
				Comment: fmt.Sprintf("%s %s (not installed)", last.ParentImage.Name, last.ParentImage.Version),
			})
		}
	}
	return out
}

// tagImage is `docker tag`: the provider adds the ref repo:tag (tag
// latest by default) to the image that {name} names, and the answer is 201.
// The refs the provider keeps itself (another image's repo:version, the
// latest of a repository with installed images) are a 409.
func (s *Server) tagImage(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	res, err := resolveImage(imgs, mux.Vars(r)[varName])
	if err != nil {
		return err
	}
	q := r.URL.Query()
	target := q.Get("repo")
	if t := q.Get("tag"); t != "" {
		target += ":" + t
	}
	ref, err := parseRef(target)
	if err != nil {
		return err
	}
	if ref.Digest != "" {
		return newError(errdefs.ErrInvalidArgument, "refusing to create a tag with a digest reference")
	}
	if err := s.backend.Tag(r.Context(), res.img.Digest, ref.Repo, ref.Tag); err != nil {
		return err
	}
	return writeStatus(w, http.StatusCreated)
}

// deleteItem is moby's ImageDeleteResponseItem.
type deleteItem struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// deleteImage is `docker rmi`: by repo:tag, full or short id, or digest.
// A ref of an image that has refs added by docker tag only untags (the
// provider's Untag, which refuses the image's own refs while others
// remain). The refs the provider keeps for an image, repo:version and
// repo:latest, name the image itself, so removing by either removes the
// image and lists every ref as Untagged, then the image as Deleted. By id,
// an image whose refs are in several repositories needs force, as with
// the daemon. A container or a child image that depends on it is 409 with
// the daemon's wording, and force untags an image that only containers
// use (see removeDependents).
func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) error {
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return newError(errdefs.ErrInvalidArgument, "invalid value for force: %q", v)
		}
		force = b
	}
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
	if res.ref != "" && slices.ContainsFunc(img.Refs, func(ref string) bool { return !slices.Contains(own, ref) }) {
		// One name of several: only that ref goes, as the daemon untags.
		repo, tag, _ := strings.Cut(res.ref, ":")
		if _, err := s.backend.Untag(r.Context(), repo, tag); err != nil {
			return err
		}
		return writeJSON(w, []deleteItem{{Untagged: res.ref}})
	}
	if res.ref == "" && !force && len(repoDigests(img)) > 1 {
		return newError(errdefs.ErrConflict, "conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", shortID(img.ID))
	}
	result, err := s.backend.Remove(r.Context(), provider.RemoveOptions{ID: img.Digest})
	if err != nil {
		return s.removeDependents(w, r, err, res, force)
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
