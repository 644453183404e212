package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/store/meta"
)

// imageRecord is the value of v1/images/<digest>: an installed image, with
// what Get-ContainerImage shows and the descriptors of its blobs, every one
// of which is committed in the content store.
type imageRecord struct {
	Name        string         `json:"name"`
	Repository  string         `json:"repository"`
	Publisher   string         `json:"publisher,omitempty"`
	Version     string         `json:"version"`
	Description string         `json:"description,omitempty"`
	IsOSImage   bool           `json:"isOSImage"`
	Parent      *api.ParentRef `json:"parent,omitempty"`
	Size        int64          `json:"size"`
	Created     time.Time      `json:"created"`
	Installed   time.Time      `json:"installed"`
	// Digest is the image's identity: the digest of the manifest the
	// source tagged (an index's, when the source serves an index).
	Digest    digest.Digest `json:"digest"`
	Source    string        `json:"source,omitempty"`
	OSVersion string        `json:"osVersion,omitempty"`
	// Index is the descriptor of the index the source tagged, when it was
	// one; Manifest is then the manifest chosen in it.
	Index    *ocispec.Descriptor  `json:"index,omitempty"`
	Manifest ocispec.Descriptor   `json:"manifest"`
	Config   ocispec.Descriptor   `json:"config"`
	Layers   []ocispec.Descriptor `json:"layers"`
	// Signed is api.Image's Signed; "" is SignedNone.
	Signed string `json:"signed,omitempty"`
	// Signatures is the signature manifest that verified the image, kept
	// with its blobs so that a save carries it (see archive.Signatures).
	Signatures *archive.Signatures `json:"signatures,omitempty"`
}

// label names the image for people: "Name version".
func (r *imageRecord) label() string { return r.Name + " " + r.Version }

// blobs lists every blob the record references.
func (r *imageRecord) blobs() []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(r.Layers)+3)
	if r.Index != nil {
		out = append(out, *r.Index)
	}
	out = append(out, r.Manifest, r.Config)
	out = append(out, r.Layers...)
	if s := r.Signatures; s != nil {
		out = append(out, s.Manifest, s.Config)
		out = append(out, s.Layers...)
	}
	return out
}

// image is the record as the API shows it, with the refs that point at it.
func (r *imageRecord) image(refs []string) api.Image {
	img := api.Image{
		Name:        r.Name,
		Repository:  r.Repository,
		Publisher:   r.Publisher,
		Version:     r.Version,
		Description: r.Description,
		IsOSImage:   r.IsOSImage,
		Size:        r.Size,
		Created:     r.Created,
		Installed:   r.Installed,
		Digest:      r.Digest.String(),
		ID:          r.Digest.Encoded(),
		Source:      r.Source,
		Refs:        refs,
		OSVersion:   r.OSVersion,
		Signed:      r.Signed,
	}
	if img.Signed == "" {
		img.Signed = api.SignedNone
	}
	if r.Parent != nil {
		p := *r.Parent
		img.ParentImage = &p
	}
	return img
}

// parsedVersion is the record's version, or nil when it does not parse.
func (r *imageRecord) parsedVersion() *goversion.Version {
	v, err := goversion.NewVersion(r.Version)
	if err != nil {
		return nil
	}
	return v
}

// jobRecord is the value of v1/jobs/<id>: the job as the API shows it,
// plus what a restarted provider needs to run it again.
type jobRecord struct {
	api.Job
	// Target is the digest of the requested image.
	Target digest.Digest `json:"target"`
	// Chain lists the images to install, parents first, the requested one
	// last, as their sources described them.
	Chain []api.FindEntry `json:"chain,omitempty"`
}

// jobHead is what a start reads of every job record (v1/jobheads): enough
// to resume the unfinished ones and to count the finished ones for
// retention, without decoding the records.
type jobHead struct {
	ID                string
	State             string
	Started, Finished time.Time
}

func (h jobHead) unfinished() bool { return h.State == api.JobQueued || h.State == api.JobRunning }

// putJob writes the job record rec, encoded as b, and its head.
func putJob(tx *bolt.Tx, rec jobRecord, b []byte) error {
	if err := meta.GetJobsBucket(tx).Put([]byte(rec.ID), b); err != nil {
		return err
	}
	return meta.GetJobHeadsBucket(tx).Put([]byte(rec.ID), meta.EncodeJobHead(rec.State, rec.Started, rec.Finished))
}

// deleteJob deletes the job record id and its head.
func deleteJob(tx *bolt.Tx, id string) error {
	if err := meta.GetJobsBucket(tx).Delete([]byte(id)); err != nil {
		return err
	}
	return meta.GetJobHeadsBucket(tx).Delete([]byte(id))
}

// listJobHeads reads the head of every job record, from v1/jobheads.
func listJobHeads(tx *bolt.Tx) ([]jobHead, error) {
	var out []jobHead
	err := meta.GetJobHeadsBucket(tx).ForEach(func(k, v []byte) error {
		state, started, finished, err := meta.DecodeJobHead(v)
		if err != nil {
			return fmt.Errorf("job %s: %w", k, err)
		}
		out = append(out, jobHead{ID: string(k), State: state, Started: started, Finished: finished})
		return nil
	})
	return out, err
}

// unfinished reports whether the job has not reached a final state.
func (r *jobRecord) unfinished() bool {
	return r.State == api.JobQueued || r.State == api.JobRunning
}

// containerRecord is the value of v1/containers/<id>. Containers arrive in
// a later issue; Remove already reads them to refuse removing an image that
// a container (in any state) is built on.
type containerRecord struct {
	Name string `json:"name"`
	// Image is the manifest digest of the container's image.
	Image   string    `json:"image"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// StateChanged is when Start or Stop last changed State; zero until
	// then.
	StateChanged time.Time `json:"stateChanged,omitzero"`
}

// getImage reads the record of dgst; ok is false when there is none.
func getImage(tx *bolt.Tx, dgst digest.Digest) (imageRecord, bool, error) {
	var rec imageRecord
	b := meta.GetImagesBucket(tx)
	if b == nil {
		return rec, false, nil
	}
	v := b.Get([]byte(dgst))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("image record %s: %w", dgst, err)
	}
	return rec, true, nil
}

// listImages reads every image record.
func listImages(tx *bolt.Tx) ([]imageRecord, error) {
	var out []imageRecord
	b := meta.GetImagesBucket(tx)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var rec imageRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("image record %s: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// indexName adds the keys of rec's name and repository to v1/imagenames.
func indexName(tx *bolt.Tx, rec imageRecord) error {
	names := meta.GetImageNamesBucket(tx)
	for _, n := range []string{rec.Name, rec.Repository} {
		if n == "" {
			continue
		}
		if err := names.Put(meta.ImageNameKey(n, rec.Digest.String()), []byte{}); err != nil {
			return fmt.Errorf("image name %s: %w", n, err)
		}
	}
	return nil
}

// unindexName deletes the keys of rec's name and repository.
func unindexName(tx *bolt.Tx, rec imageRecord) error {
	names := meta.GetImageNamesBucket(tx)
	for _, n := range []string{rec.Name, rec.Repository} {
		if err := names.Delete(meta.ImageNameKey(n, rec.Digest.String())); err != nil {
			return fmt.Errorf("image name %s: %w", n, err)
		}
	}
	return nil
}

// imagesNamed reads the records whose name or repository is name
// (case-insensitively, no wildcards), by a range scan of v1/imagenames.
func imagesNamed(tx *bolt.Tx, name string) ([]imageRecord, error) {
	prefix := meta.ImageNameKey(name, "")
	var out []imageRecord
	seen := map[string]bool{}
	c := meta.GetImageNamesBucket(tx).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		d := string(k[len(prefix):])
		if seen[d] {
			continue
		}
		seen[d] = true
		rec, ok, err := getImage(tx, digest.Digest(d))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("image name index: %q names no image record", k)
		}
		out = append(out, rec)
	}
	return out, nil
}

// setRef points the ref repo:tag at d, keeping v1/refdigests and the
// listing views of d and of the image the ref left in step.
func setRef(tx *bolt.Tx, repo, tag string, d digest.Digest) error {
	prev, moved, err := moveRef(tx, repo, tag, d)
	if err != nil || !moved {
		return err
	}
	if prev != "" {
		if err := relist(tx, prev); err != nil {
			return err
		}
	}
	return relist(tx, d)
}

// moveRef points the ref repo:tag at d, keeping v1/refdigests in step,
// and returns the image the ref named before ("" for none); moved is false
// when it named d already. The caller relists both.
func moveRef(tx *bolt.Tx, repo, tag string, d digest.Digest) (prev digest.Digest, moved bool, err error) {
	b, err := meta.CreateRefBucket(tx, repo)
	if err != nil {
		return "", false, err
	}
	byDigest := meta.GetRefDigestsBucket(tx)
	if old := b.Get([]byte(tag)); old != nil {
		if string(old) == string(d) {
			return "", false, nil
		}
		prev = digest.Digest(old) // a copy: old is only valid until the Put
		if err := byDigest.Delete(meta.RefDigestKey(string(prev), repo, tag)); err != nil {
			return "", false, err
		}
	}
	if err := b.Put([]byte(tag), []byte(d)); err != nil {
		return "", false, fmt.Errorf("ref %s:%s: %w", repo, tag, err)
	}
	if err := byDigest.Put(meta.RefDigestKey(string(d), repo, tag), []byte{}); err != nil {
		return "", false, err
	}
	return prev, true, nil
}

// deleteRef deletes the ref repo:tag, if any, keeping v1/refdigests and
// the listing view of the image it named in step.
func deleteRef(tx *bolt.Tx, repo, tag string) error {
	b := meta.GetRefBucket(tx, repo)
	if b == nil {
		return nil
	}
	old := b.Get([]byte(tag))
	if old == nil {
		return nil
	}
	prev := digest.Digest(old) // a copy: old is only valid until the Delete
	if err := meta.GetRefDigestsBucket(tx).Delete(meta.RefDigestKey(string(prev), repo, tag)); err != nil {
		return err
	}
	if err := b.Delete([]byte(tag)); err != nil {
		return err
	}
	return relist(tx, prev)
}

// listKey is rec's key in the listing view, v1/imagelist, which orders the
// images as sortImages does.
func listKey(rec *imageRecord) []byte {
	return meta.ImageListKey(rec.Name, find.VersionKey(rec.Version), rec.Digest.String())
}

// relist writes the listing view of the image d, from its record and its
// refs; nothing when d has no record (a ref that outlives its image while
// deleteImage runs).
func relist(tx *bolt.Tx, d digest.Digest) error {
	rec, ok, err := getImage(tx, d)
	if err != nil || !ok {
		return err
	}
	b, err := encodeImage(rec.image(refsOf(tx, d)))
	if err != nil {
		return fmt.Errorf("listing of %s: %w", d, err)
	}
	if err := meta.GetImageListBucket(tx).Put(listKey(&rec), b); err != nil {
		return fmt.Errorf("listing of %s: %w", d, err)
	}
	return nil
}

// encodeImage is img's JSON as the API writes it (HTML characters left
// as they are), without a newline.
func encodeImage(img api.Image) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(img); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// buildImageList writes the listing view of every image record, when the
// migration to schema 8 asked for it: once, in one transaction.
func buildImageList(ctx context.Context, db *meta.DB) error {
	var need bool
	if err := db.View(ctx, func(tx *bolt.Tx) error { need = meta.ImageListNeedsBuild(tx); return nil }); err != nil || !need {
		return err
	}
	return db.Update(ctx, func(tx *bolt.Tx) error {
		var ds []digest.Digest
		if err := meta.GetImagesBucket(tx).ForEach(func(k, _ []byte) error {
			ds = append(ds, digest.Digest(k))
			return nil
		}); err != nil {
			return err
		}
		for _, d := range ds {
			if err := relist(tx, d); err != nil {
				return err
			}
		}
		return meta.ImageListBuilt(tx)
	})
}

// refsOf lists, sorted, the refs ("repo:tag") that point at d: a range
// scan of v1/refdigests.
func refsOf(tx *bolt.Tx, d digest.Digest) []string {
	prefix := append([]byte(d), 0)
	var out []string
	c := meta.GetRefDigestsBucket(tx).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		repo, tag, _ := strings.Cut(string(k[len(prefix):]), "\x00")
		out = append(out, repo+":"+tag)
	}
	slices.Sort(out)
	return out
}

// imageHead is what Get shows of an image record: the record without the
// descriptors of its blobs, which a listing need not decode.
type imageHead struct {
	Name        string         `json:"name"`
	Repository  string         `json:"repository"`
	Publisher   string         `json:"publisher,omitempty"`
	Version     string         `json:"version"`
	Description string         `json:"description,omitempty"`
	IsOSImage   bool           `json:"isOSImage"`
	Parent      *api.ParentRef `json:"parent,omitempty"`
	Size        int64          `json:"size"`
	Created     time.Time      `json:"created"`
	Installed   time.Time      `json:"installed"`
	Digest      digest.Digest  `json:"digest"`
	Source      string         `json:"source,omitempty"`
	OSVersion   string         `json:"osVersion,omitempty"`
}

// rawRecord is a record copied out of a transaction.
type rawRecord struct{ k, v []byte }

// copyImageRecords copies every image record out of tx, for
// decodeImageHeads to decode after the transaction.
func copyImageRecords(tx *bolt.Tx) ([]rawRecord, error) {
	var raws []rawRecord
	err := meta.GetImagesBucket(tx).ForEach(func(k, v []byte) error {
		raws = append(raws, rawRecord{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	return raws, err
}

// decodeImageHeads decodes records as Get shows them (the blobs'
// descriptors left out), by as many goroutines as there are CPUs, since
// decoding is most of what a listing of thousands of images costs.
func decodeImageHeads(raws []rawRecord) ([]imageRecord, error) {
	out := make([]imageRecord, len(raws))
	errs := make([]error, len(raws))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(raws)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raws); i += workers {
				var h imageHead
				if err := json.Unmarshal(raws[i].v, &h); err != nil {
					errs[i] = fmt.Errorf("image record %s: %w", raws[i].k, err)
					continue
				}
				out[i] = imageRecord{Name: h.Name, Repository: h.Repository, Publisher: h.Publisher, Version: h.Version,
					Description: h.Description, IsOSImage: h.IsOSImage, Parent: h.Parent, Size: h.Size, Created: h.Created,
					Installed: h.Installed, Digest: h.Digest, Source: h.Source, OSVersion: h.OSVersion}
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// listRefs maps each image digest to the refs ("repo:tag") that point at
// it, sorted.
func listRefs(tx *bolt.Tx) (map[digest.Digest][]string, error) {
	out := map[digest.Digest][]string{}
	refs := meta.GetRefsBucket(tx)
	if refs == nil {
		return out, nil
	}
	err := refs.ForEach(func(repo, _ []byte) error {
		b := refs.Bucket(repo)
		if b == nil {
			return nil
		}
		return b.ForEach(func(tag, dgst []byte) error {
			d := digest.Digest(dgst)
			out[d] = append(out[d], string(repo)+":"+string(tag))
			return nil
		})
	})
	for _, v := range out {
		slices.Sort(v)
	}
	return out, err
}

// putImage writes rec, its listing view, and the ref repository:version to
// it, and moves the repository's "latest" ref to rec when rec's version is
// higher than that of the image latest names. It reads only the refs of
// rec's repository and the record latest names, and relists rec and the
// images whose refs it took, each once.
func putImage(tx *bolt.Tx, rec imageRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("image record %s: %w", rec.Digest, err)
	}
	if old, ok, err := getImage(tx, rec.Digest); err != nil {
		return err
	} else if ok {
		if err := unindexName(tx, old); err != nil {
			return err
		}
		if err := meta.GetImageListBucket(tx).Delete(listKey(&old)); err != nil {
			return fmt.Errorf("listing of %s: %w", old.Digest, err)
		}
	}
	if err := meta.GetImagesBucket(tx).Put([]byte(rec.Digest), b); err != nil {
		return fmt.Errorf("image record %s: %w", rec.Digest, err)
	}
	if err := indexName(tx, rec); err != nil {
		return err
	}
	tags := []string{rec.Version}
	if higher, err := aboveLatest(tx, rec); err != nil {
		return err
	} else if higher {
		tags = append(tags, latestTag)
	}
	var left []digest.Digest
	for _, tag := range tags {
		prev, _, err := moveRef(tx, rec.Repository, tag, rec.Digest)
		if err != nil {
			return err
		}
		if prev != "" && prev != rec.Digest && !slices.Contains(left, prev) {
			left = append(left, prev)
		}
	}
	for _, d := range append(left, rec.Digest) {
		if err := relist(tx, d); err != nil {
			return err
		}
	}
	return nil
}

// aboveLatest reports whether rec should take its repository's latest
// ref: there is none, it names an image of another repository or none, or
// rec's version is higher than that of the image it names.
func aboveLatest(tx *bolt.Tx, rec imageRecord) (bool, error) {
	refs := meta.GetRefBucket(tx, rec.Repository)
	if refs == nil {
		return true, nil
	}
	d := refs.Get([]byte(latestTag))
	if d == nil {
		return true, nil
	}
	v := meta.GetImagesBucket(tx).Get(d)
	if v == nil {
		return true, nil
	}
	// Only the repository and version of the image latest names.
	var head struct {
		Repository string `json:"repository"`
		Version    string `json:"version"`
	}
	if err := json.Unmarshal(v, &head); err != nil {
		return false, fmt.Errorf("image record %s: %w", d, err)
	}
	cur := imageRecord{Repository: head.Repository, Version: head.Version}
	return cur.Repository != rec.Repository || higherVersion(&rec, &cur), nil
}

// higherVersion reports whether a's version is above b's, as latest ranks
// them: a version that parses is above one that does not.
func higherVersion(a, b *imageRecord) bool {
	va, vb := a.parsedVersion(), b.parsedVersion()
	return va != nil && (vb == nil || va.GreaterThan(vb))
}

// latestTag is the ref that names the highest installed version of a
// repository.
const latestTag = "latest"

// updateLatest points repo:latest at the installed image of repo with the
// highest version. When none is left it deletes a latest ref whose image
// is gone, and the repository's refs bucket when it is empty. The images of
// repo are found through its refs: each has its ref repo:version.
func updateLatest(tx *bolt.Tx, repo string) error {
	refs := meta.GetRefBucket(tx, repo)
	var best *imageRecord
	if refs != nil {
		seen := map[string]bool{}
		err := refs.ForEach(func(tag, d []byte) error {
			if string(tag) == latestTag || seen[string(d)] {
				return nil
			}
			seen[string(d)] = true
			r, ok, err := getImage(tx, digest.Digest(d))
			if err != nil || !ok || r.Repository != repo {
				return err
			}
			if best == nil || higherVersion(&r, best) {
				best = &r
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if best == nil {
		if refs == nil {
			return nil
		}
		// A latest ref that Tag added to a repository without installed
		// images stays while its image does.
		if d := refs.Get([]byte(latestTag)); d != nil {
			_, live, err := getImage(tx, digest.Digest(d))
			if err != nil {
				return err
			}
			if !live {
				if err := deleteRef(tx, repo, latestTag); err != nil {
					return err
				}
			}
		}
		_, err := meta.DeleteRefBucketIfEmpty(tx, repo)
		return err
	}
	return setRef(tx, repo, latestTag, best.Digest)
}

// deleteImage deletes the record of dgst and every ref that points at it,
// then fixes the latest ref of its repository.
func deleteImage(tx *bolt.Tx, rec imageRecord) error {
	if err := meta.GetImagesBucket(tx).Delete([]byte(rec.Digest)); err != nil {
		return fmt.Errorf("image record %s: %w", rec.Digest, err)
	}
	if err := unindexName(tx, rec); err != nil {
		return err
	}
	if err := meta.GetImageListBucket(tx).Delete(listKey(&rec)); err != nil {
		return fmt.Errorf("listing of %s: %w", rec.Digest, err)
	}
	// The refs that point at it, from v1/refdigests.
	var emptied []string
	for _, ref := range refsOf(tx, rec.Digest) {
		i := strings.LastIndexByte(ref, ':')
		repo, tag := ref[:i], ref[i+1:]
		if err := deleteRef(tx, repo, tag); err != nil {
			return fmt.Errorf("refs of %s: %w", rec.Digest, err)
		}
		if !slices.Contains(emptied, repo) {
			emptied = append(emptied, repo)
		}
	}
	for _, repo := range append(emptied, rec.Repository) {
		if err := updateLatest(tx, repo); err != nil {
			return err
		}
	}
	return nil
}

// getJob reads the record of job id; ok is false when there is none.
func getJob(tx *bolt.Tx, id string) (jobRecord, bool, error) {
	var rec jobRecord
	v := meta.GetJobsBucket(tx).Get([]byte(id))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("job record %s: %w", id, err)
	}
	return rec, true, nil
}

// listJobs reads every job record.
func listJobs(tx *bolt.Tx) ([]jobRecord, error) {
	var out []jobRecord
	err := meta.GetJobsBucket(tx).ForEach(func(k, v []byte) error {
		var rec jobRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("job record %s: %w", k, err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// encodeJob marshals rec outside the transaction that writes it.
func encodeJob(rec jobRecord) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("job record %s: %w", rec.ID, err)
	}
	return b, nil
}

// listContainers reads every container record.
func listContainers(tx *bolt.Tx) (map[string]containerRecord, error) {
	out := map[string]containerRecord{}
	b := meta.GetContainersBucket(tx)
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var rec containerRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("container record %s: %w", k, err)
		}
		out[string(k)] = rec
		return nil
	})
	return out, err
}

// sameName reports whether name is a record's display name or repository,
// case-insensitively.
func sameName(name string, r *imageRecord) bool {
	return strings.EqualFold(name, r.Name) || strings.EqualFold(name, r.Repository)
}
