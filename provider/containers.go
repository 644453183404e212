package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/meta"
)

// containersDir holds one directory per container under Config.Root:
// containers/<id>/rootfs is the container's writable directory.
const (
	containersDir = "containers"
	rootfsDir     = "rootfs"
)

// containerNameRE is the grammar of container names (Docker's).
var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// containerIDLen is the length of a container id in hex.
const containerIDLen = 64

// containerLocks serialises the operations that touch one container's
// directory (copy, commit, remove), so that a commit never packs a
// directory that a copy is changing and a removal never races a copy.
type containerLocks struct {
	mu    sync.Mutex
	locks map[string]*containerLock
}

type containerLock struct {
	mu   sync.Mutex
	refs int
}

// lock takes the lock of container id and returns its release.
func (l *containerLocks) lock(id string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*containerLock{}
	}
	cl := l.locks[id]
	if cl == nil {
		cl = &containerLock{}
		l.locks[id] = cl
	}
	cl.refs++
	l.mu.Unlock()
	cl.mu.Lock()
	return func() {
		cl.mu.Unlock()
		l.mu.Lock()
		cl.refs--
		if cl.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}

// containerPath is the directory of container id.
func (p *Provider) containerPath(id string) string {
	return filepath.Join(p.root, containersDir, id)
}

// newContainerID returns 32 random bytes in hex.
func newContainerID() string {
	var b [containerIDLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// The words of generated container names, as Docker makes them:
// "<adjective>_<name>".
var (
	nameAdjectives = []string{
		"admiring", "bold", "brave", "calm", "clever", "eager", "elegant", "festive",
		"focused", "gallant", "happy", "jolly", "keen", "kind", "lucid", "modest",
		"nifty", "peaceful", "quirky", "serene", "sharp", "stoic", "tender", "vibrant",
	}
	nameNouns = []string{
		"babbage", "bell", "curie", "darwin", "euler", "fermat", "gauss", "hopper",
		"hypatia", "kepler", "lamport", "lovelace", "newton", "noether", "pascal", "ritchie",
		"shannon", "thompson", "torvalds", "turing", "wiles", "wing", "wozniak", "yonath",
	}
)

func randomIndex(n int) int {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(i.Int64())
}

// generateName picks a name that taken does not hold: a Docker-like
// "adjective_name", or "container-<first 12 hex of id>" when a few tries
// all collide.
func generateName(id string, taken func(string) bool) string {
	for range 8 {
		n := nameAdjectives[randomIndex(len(nameAdjectives))] + "_" + nameNouns[randomIndex(len(nameNouns))]
		if !taken(n) {
			return n
		}
	}
	return "container-" + id[:12]
}

// getContainer reads the record of container id; ok is false when there
// is none.
func getContainer(tx *bolt.Tx, id string) (containerRecord, bool, error) {
	var rec containerRecord
	v := meta.GetContainersBucket(tx).Get([]byte(id))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("container record %s: %w", id, err)
	}
	return rec, true, nil
}

// putContainer writes the record of container id.
func putContainer(tx *bolt.Tx, id string, rec containerRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("container record %s: %w", id, err)
	}
	if err := meta.GetContainersBucket(tx).Put([]byte(id), b); err != nil {
		return fmt.Errorf("container record %s: %w", id, err)
	}
	return nil
}

// resolveContainer finds the container ref names, in this order: a full
// id, a name, then a unique id prefix of at least minIDPrefix hex
// characters. Several containers that begin with the prefix are
// InvalidArgument, listing them; no match is NotFound.
func resolveContainer(containers map[string]containerRecord, ref string) (string, containerRecord, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", containerRecord{}, fmt.Errorf("container: an id or a name is required: %w", errdefs.ErrInvalidArgument)
	}
	if c, ok := containers[ref]; ok {
		return ref, c, nil
	}
	for id, c := range containers {
		if c.Name == ref {
			return id, c, nil
		}
	}
	prefix := strings.ToLower(ref)
	if !isHex(prefix) {
		return "", containerRecord{}, fmt.Errorf("no such container %q: %w", ref, errdefs.ErrNotFound)
	}
	if len(prefix) < minIDPrefix {
		return "", containerRecord{}, fmt.Errorf("container %q: no container has that name, and an id prefix needs at least %d hex characters: %w",
			ref, minIDPrefix, errdefs.ErrNotFound)
	}
	var hits []string
	for id := range containers {
		if strings.HasPrefix(id, prefix) {
			hits = append(hits, id)
		}
	}
	switch len(hits) {
	case 0:
		return "", containerRecord{}, fmt.Errorf("no such container %q: %w", ref, errdefs.ErrNotFound)
	case 1:
		return hits[0], containers[hits[0]], nil
	}
	slices.Sort(hits)
	list := make([]string, len(hits))
	for i, id := range hits {
		list[i] = fmt.Sprintf("%s (%s)", id, containers[id].Name)
	}
	return "", containerRecord{}, fmt.Errorf("container id prefix %q is ambiguous: it begins %s: %w",
		ref, strings.Join(list, ", "), errdefs.ErrInvalidArgument)
}

// findContainer resolves ref in a transaction.
func findContainer(tx *bolt.Tx, ref string) (string, containerRecord, error) {
	all, err := listContainers(tx)
	if err != nil {
		return "", containerRecord{}, err
	}
	return resolveContainer(all, ref)
}

// containerView is the container as the API shows it; its image's record
// gives the image columns.
func containerView(tx *bolt.Tx, id string, c containerRecord) (api.Container, error) {
	out := api.Container{
		ID:           id,
		Name:         c.Name,
		Image:        c.Image,
		ImageDigest:  c.Image,
		State:        c.State,
		Created:      c.Created,
		StateChanged: c.StateChanged,
	}
	img, ok, err := getImage(tx, digest.Digest(c.Image))
	if err != nil {
		return out, err
	}
	if ok {
		out.Image = img.label()
		out.ParentImageName = img.Name
	}
	return out, nil
}

// CreateContainer creates a container on an installed image: a record in
// state Created and an empty writable directory. A filesystem out of
// space or quota is InsufficientStorage.
//
// req.Image names the image as Remove's ID or Get's ChildOf do: a name,
// "name:version", a digest or a unique id prefix; a name with several
// installed versions takes the highest. No installed image is NotFound. The
// name must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127} (else InvalidArgument)
// and be unique (else AlreadyExists); an empty name picks a free one. The
// record is written in the same transaction that finds the image, so a
// concurrent Remove either sees the container or removes the image first.
func (p *Provider) CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error) {
	if p.isClosing() {
		return api.Container{}, errClosed
	}
	imageRef := strings.TrimSpace(req.Image)
	if imageRef == "" {
		return api.Container{}, fmt.Errorf("container: an image is required: %w", errdefs.ErrInvalidArgument)
	}
	name := strings.TrimSpace(req.Name)
	if name != "" && !containerNameRE.MatchString(name) {
		return api.Container{}, fmt.Errorf("container name %q: want [a-zA-Z0-9][a-zA-Z0-9_.-], at most 128 characters: %w",
			name, errdefs.ErrInvalidArgument)
	}
	id := newContainerID()
	dir := p.containerPath(id)
	if err := os.MkdirAll(filepath.Join(dir, rootfsDir), 0o755); err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			p.log.WithError(rerr).WithField("container", id).Warn("directory of a refused container not removed")
		}
		return api.Container{}, fmt.Errorf("container %s: directory: %w", id, storageError(err, p.root, "the directory of a container"))
	}
	var out api.Container
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		sel, err := resolveImages(recs, imageRef)
		if err != nil {
			return err
		}
		img := highest(sel)
		all, err := listContainers(tx)
		if err != nil {
			return err
		}
		taken := func(n string) bool {
			for _, c := range all {
				if c.Name == n {
					return true
				}
			}
			return false
		}
		cname := name
		if cname == "" {
			cname = generateName(id, taken)
		} else if taken(cname) {
			return fmt.Errorf("container name %q is already in use: %w", cname, errdefs.ErrAlreadyExists)
		}
		rec := containerRecord{Name: cname, Image: img.Digest.String(), State: api.ContainerCreated, Created: time.Now().UTC()}
		if err := putContainer(tx, id, rec); err != nil {
			return err
		}
		out, err = containerView(tx, id, rec)
		return err
	})
	if err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			p.log.WithError(rerr).WithField("container", id).Warn("directory of a refused container not removed")
		}
		return api.Container{}, storageError(err, p.root, "the record of a container")
	}
	p.log.WithField("container", out.Name).WithField("id", id).WithField("image", out.Image).Info("container created")
	return out, nil
}

// Containers lists the containers, sorted by creation time then id; never
// nil.
func (p *Provider) Containers(ctx context.Context) ([]api.Container, error) {
	out := []api.Container{}
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		all, err := listContainers(tx)
		if err != nil {
			return err
		}
		for id, c := range all {
			v, err := containerView(tx, id, c)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b api.Container) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Container returns one container by id, name or unique id prefix (at
// least 4 hex characters); NotFound when none matches, InvalidArgument
// listing them when a prefix begins several ids.
func (p *Provider) Container(ctx context.Context, ref string) (api.Container, error) {
	var out api.Container
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		id, c, err := findContainer(tx, ref)
		if err != nil {
			return err
		}
		out, err = containerView(tx, id, c)
		return err
	})
	return out, err
}

// StartContainer sets a container's state to Running; no process runs.
// Starting a running container changes nothing.
func (p *Provider) StartContainer(ctx context.Context, ref string) (api.Container, error) {
	return p.setContainerState(ctx, ref, api.ContainerRunning)
}

// StopContainer sets a container's state to Stopped, from Running or
// Created. Stopping a stopped container changes nothing.
func (p *Provider) StopContainer(ctx context.Context, ref string) (api.Container, error) {
	return p.setContainerState(ctx, ref, api.ContainerStopped)
}

func (p *Provider) setContainerState(ctx context.Context, ref, state string) (api.Container, error) {
	var out api.Container
	changed := false
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		id, c, err := findContainer(tx, ref)
		if err != nil {
			return err
		}
		if c.State != state {
			c.State = state
			c.StateChanged = time.Now().UTC()
			changed = true
			if err := putContainer(tx, id, c); err != nil {
				return err
			}
		}
		out, err = containerView(tx, id, c)
		return err
	})
	if err != nil {
		return api.Container{}, err
	}
	if changed {
		p.log.WithField("container", out.Name).WithField("state", state).Info("container state changed")
	}
	return out, nil
}

// lockContainer finds the container ref names and takes its lock; the
// caller calls unlock. The container may be gone by the time the lock is
// held: callers read its record again under the lock.
func (p *Provider) lockContainer(ctx context.Context, ref string) (id string, unlock func(), err error) {
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		id, _, err = findContainer(tx, ref)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return id, p.ctrLocks.lock(id), nil
}

// RemoveContainer removes a container: its record first, then its
// directory. A running container is Conflict unless force. The image it was
// built on may be removed afterwards. A directory that cannot be deleted is
// logged, not returned: the container is gone, and the next start of the
// provider deletes the directory.
func (p *Provider) RemoveContainer(ctx context.Context, ref string, force bool) error {
	if p.isClosing() {
		return errClosed
	}
	id, unlock, err := p.lockContainer(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	var rec containerRecord
	err = p.db.Update(ctx, func(tx *bolt.Tx) error {
		c, ok, err := getContainer(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no such container %q: %w", ref, errdefs.ErrNotFound)
		}
		if c.State == api.ContainerRunning && !force {
			return fmt.Errorf("container %s is running: stop it first, or force the removal: %w", c.Name, errdefs.ErrConflict)
		}
		rec = c
		return meta.GetContainersBucket(tx).Delete([]byte(id))
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p.containerPath(id)); err != nil {
		p.log.WithError(err).WithField("container", rec.Name).Warn("container directory not removed")
	}
	p.log.WithField("container", rec.Name).WithField("id", id).Info("container removed")
	return nil
}

// cleanOrphans deletes what an interrupted process may have left under the
// root: container directories without a record, the temporary directories
// of copies, and spool files.
func (p *Provider) cleanOrphans(ctx context.Context) error {
	var ids map[string]containerRecord
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		ids, err = listContainers(tx)
		return err
	})
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(p.root, containersDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("containers directory: %w", err)
	}
	for _, e := range entries {
		if _, ok := ids[e.Name()]; ok {
			p.cleanContainerDir(e.Name())
			continue
		}
		if err := os.RemoveAll(filepath.Join(p.root, containersDir, e.Name())); err != nil {
			p.log.WithError(err).WithField("id", e.Name()).Warn("orphan container directory not removed")
		}
	}
	if err := os.RemoveAll(filepath.Join(p.root, tmpDir)); err != nil {
		p.log.WithError(err).Warn("temporary directory not cleaned")
	}
	return nil
}

// cleanContainerDir deletes everything but rootfs in the directory of
// container id: the temporary directories of interrupted copies.
func (p *Provider) cleanContainerDir(id string) {
	entries, err := os.ReadDir(p.containerPath(id))
	if err != nil {
		p.log.WithError(err).WithField("id", id).Warn("container directory not readable")
		return
	}
	for _, e := range entries {
		if e.Name() == rootfsDir {
			continue
		}
		if err := os.RemoveAll(filepath.Join(p.containerPath(id), e.Name())); err != nil {
			p.log.WithError(err).WithField("id", id).Warn("leftover of a copy not removed")
		}
	}
}

// MinIDPrefix is the shortest id prefix that names an image or a
// container. Clients that accept ids and names alike (the Docker API) take
// no shorter prefix either, so that a short name is never read as an id.
const MinIDPrefix = minIDPrefix

// StatContainerPath describes the file or directory at path in the
// container that ref names, as `docker cp` asks before it copies: path is
// rooted in the container as CopyToContainer roots its destination ("/"
// is the top of the container's files, whose FileInfo is named "."). A
// link is not followed (a copy never writes one). NotFound when no
// container matches ref or nothing is at path.
func (p *Provider) StatContainerPath(ctx context.Context, ref, path string) (fs.FileInfo, error) {
	var id, name string
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		var c containerRecord
		var err error
		id, c, err = findContainer(tx, ref)
		name = c.Name
		return err
	})
	if err != nil {
		return nil, err
	}
	rel := containerPath(path)
	notFound := fmt.Errorf("path %q in container %s: %w", "/"+strings.TrimPrefix(rel, "."), name, errdefs.ErrNotFound)
	root, err := os.OpenRoot(filepath.Join(p.containerPath(id), rootfsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound // removed meanwhile
	} else if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("path %q in container %s: %w", "/"+rel, name, err)
	}
	return fi, nil
}

// UntagUsedImage deletes every ref of the installed image that image names
// (as Tag's image does) and keeps the image, for the containers that use
// it: this is `docker rmi -f` of an image that a container uses, since the
// provider keeps the image of every container until the container is
// removed. The image then has no ref; it is listed, and removed by id or
// by name, as before. The latest ref of each repository it left moves to
// the highest version that remains there. It returns the refs it deleted,
// sorted. FailedPrecondition when no container uses the image (it is
// removed, not untagged); the check and the deletes are one transaction.
func (p *Provider) UntagUsedImage(ctx context.Context, image string) ([]string, error) {
	if p.isClosing() {
		return nil, errClosed
	}
	var refs []string
	var rec imageRecord
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		var err error
		if rec, err = resolveOne(tx, image); err != nil {
			return err
		}
		all, err := listContainers(tx)
		if err != nil {
			return err
		}
		used := false
		for _, c := range all {
			if c.Image == rec.Digest.String() {
				used = true
				break
			}
		}
		if !used {
			return fmt.Errorf("image %s: no container uses it, so it is removed rather than untagged: %w", rec.label(), errdefs.ErrFailedPrecondition)
		}
		refs = refsOf(tx, rec.Digest)
		var repos []string
		for _, ref := range refs {
			i := strings.LastIndexByte(ref, ':')
			if err := deleteRef(tx, ref[:i], ref[i+1:]); err != nil {
				return fmt.Errorf("ref %s: %w", ref, err)
			}
			if !slices.Contains(repos, ref[:i]) {
				repos = append(repos, ref[:i])
			}
		}
		for _, repo := range repos {
			if err := updateLatest(tx, repo); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.log.WithField("image", rec.label()).WithField("refs", refs).Info("image untagged; its containers keep it")
	return refs, nil
}

// RestoreImageRefs gives the installed image that image names the refs an
// install writes: repository:version, and repository:latest when no other
// image of its repository has a higher version. An install of an image that
// UntagUsedImage left without refs finds it installed and writes nothing,
// so a client that pulls it again calls this. A ref that names another
// image stays as it is. It returns the refs it added, none when the image
// has them already.
func (p *Provider) RestoreImageRefs(ctx context.Context, image string) ([]string, error) {
	if p.isClosing() {
		return nil, errClosed
	}
	var added []string
	var rec imageRecord
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		added = nil
		var err error
		if rec, err = resolveOne(tx, image); err != nil {
			return err
		}
		if refDigest(tx, rec.Repository, rec.Version) == "" {
			if err := setRef(tx, rec.Repository, rec.Version, rec.Digest); err != nil {
				return err
			}
			added = append(added, rec.Repository+":"+rec.Version)
		}
		before := refDigest(tx, rec.Repository, latestTag)
		if err := updateLatest(tx, rec.Repository); err != nil {
			return err
		}
		if after := refDigest(tx, rec.Repository, latestTag); after == rec.Digest && before != after {
			added = append(added, rec.Repository+":"+latestTag)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(added) > 0 {
		p.log.WithField("image", rec.label()).WithField("refs", added).Info("image refs restored")
	}
	return added, nil
}
