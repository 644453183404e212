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
