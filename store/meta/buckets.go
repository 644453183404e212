package meta

// The schema of the metadata database, drawn as a tree. A name ending in "/"
// is a bucket; <...> stands for a key chosen at run time; "->" shows what a
// key holds. buckets_test.go parses this drawing and compares it with the
// buckets the code creates, so keep the two in step.
//
//	meta/
//	├── schema -> schema version, uint64 big-endian
//	└── <mark> -> empty: "build-imagelist" while providerd has still to build v1/imagelist from the records
//	v1/
//	├── repositories/              catalogd: the published images
//	│   └── <name>/                repository name, e.g. microsoft/iis
//	│       ├── manifests/
//	│       │   └── <digest> -> manifest record (JSON)
//	│       ├── tags/
//	│       │   └── <tag> -> manifest digest
//	│       ├── blobs/             the blobs this repository may serve
//	│       │   └── <digest> -> empty
//	│       └── referrers/
//	│           └── <subject>/     digest of the manifest referred to
//	│               └── <digest> -> artifact type of the referring manifest
//	├── find/                      catalogd: the find index, kept on write
//	│   ├── entries/               <entry> is <repo> NUL <digest>
//	│   │   └── <entry> -> find entry (JSON)
//	│   ├── names/                 <name> is <lower-cased name> NUL <repo> NUL <digest>
//	│   │   └── <name> -> empty
//	│   ├── digests/               <digest> is <digest> NUL <repo>
//	│   │   └── <digest> -> empty
//	│   ├── tags/                  <tag> is <repo> NUL <digest> NUL <tag>
//	│   │   └── <tag> -> empty
//	│   ├── changes/               the change feed: the last change of each entry
//	│   │   └── <seq> -> change (JSON), seq uint64 big-endian
//	│   └── state/
//	│       └── <state> -> "rebuild" (the index must be built), "id" (the index's identity), "floor" (the feed's first seq)
//	├── uploads/                   catalogd: blob uploads in progress
//	│   └── <id> -> upload session (JSON)
//	├── images/                    providerd: the installed images
//	│   └── <digest> -> image record (JSON), keyed by manifest digest
//	├── imagenames/                providerd: the images by name; <name> is <lower-cased name or repository> NUL <digest>
//	│   └── <name> -> empty
//	├── imagelist/                 providerd: the listing view; <image> is <lower-cased name> NUL <version key> NUL <digest>
//	│   └── <image> -> the image as the API shows it (JSON)
//	├── refs/                      providerd: names that point at images
//	│   └── <repo>/                repository name, e.g. nanoserver
//	│       └── <tag> -> manifest digest, e.g. 10.0.10586.0 or latest
//	├── refdigests/                providerd: refs by digest; <ref> is <digest> NUL <repo> NUL <tag>
//	│   └── <ref> -> empty
//	├── containers/                providerd: {name, image, state, created}
//	│   └── <id> -> container record (JSON)
//	├── jobs/                      providerd: install jobs
//	│   └── <id> -> job record (JSON)
//	├── jobheads/                  providerd: what a start reads of each job
//	│   └── <id> -> started, finished (int64 big-endian Unix ns, 0 for none), state
//	├── sources/                   providerd: where images come from
//	│   └── <name> -> source (JSON)
//	├── mirrors/                   providerd: the index of each source, synced from it
//	│   └── <source>/
//	│       ├── state -> sync state (JSON)
//	│       ├── count -> number of entries, uint64 big-endian
//	│       ├── entries/           as in find/
//	│       │   └── <entry> -> find entry (JSON)
//	│       ├── names/
//	│       │   └── <name> -> empty
//	│       ├── digests/
//	│       │   └── <digest> -> empty
//	│       ├── manifests/         plain registries: each manifest read once
//	│       │   └── <digest> -> manifest as Find reads it (JSON)
//	│       └── repositories/      plain registries: the crawl of each repository
//	│           └── <repo> -> crawl state (JSON)
//	└── leases/                    providerd: blobs that GC keeps
//	    └── <job>/                 id of a job that has not ended
//	        └── <digest> -> empty

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket and key names. The catalog and the provider reach them through the
// helpers below.
var (
	bucketKeyMeta         = []byte("meta")
	keySchema             = []byte("schema")
	keyImageListBuild     = []byte("build-imagelist")
	bucketKeyV1           = []byte("v1")
	bucketKeyRepositories = []byte("repositories")
	bucketKeyManifests    = []byte("manifests")
	bucketKeyTags         = []byte("tags")
	bucketKeyBlobs        = []byte("blobs")
	bucketKeyReferrers    = []byte("referrers")
	bucketKeyUploads      = []byte("uploads")
	bucketKeyImages       = []byte("images")
	bucketKeyRefs         = []byte("refs")
	bucketKeyContainers   = []byte("containers")
	bucketKeyJobs         = []byte("jobs")
	bucketKeySources      = []byte("sources")
	bucketKeyLeases       = []byte("leases")
	bucketKeyFind         = []byte("find")
	bucketKeyMirrors      = []byte("mirrors")
	bucketKeyImageNames   = []byte("imagenames")
	bucketKeyJobHeads     = []byte("jobheads")
	bucketKeyRefDigests   = []byte("refdigests")
	bucketKeyImageList    = []byte("imagelist")
)

// The buckets of v1/find.
const (
	FindEntries = "entries"
	FindNames   = "names"
	FindDigests = "digests"
	FindTags    = "tags"
	FindChanges = "changes"
	FindState   = "state"
)

// findBuckets are the children of v1/find, which migration 3 adds.
var findBuckets = []string{FindEntries, FindNames, FindDigests, FindTags, FindChanges, FindState}

// KeyFindRebuild, in v1/find/state, says that the find index does not
// cover the repositories yet: catalogd builds it from them.
var KeyFindRebuild = []byte("rebuild")

// KeyFindID, in v1/find/state, is the identity of the index, random: a
// mirror that followed another index resyncs.
var KeyFindID = []byte("id")

// KeyFindFloor, in v1/find/state, is the sequence number (uint64
// big-endian) before which the change feed has lost changes (a rebuild
// clears it): a mirror that has read less than it resyncs.
var KeyFindFloor = []byte("floor")

// GetMirrorsBucket returns v1/mirrors, whose children are the mirrors of
// the sources, by source name (see provider/mirror).
func GetMirrorsBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyMirrors) }

// The buckets of a mirror, v1/mirrors/<source>/.
const (
	MirrorEntries      = "entries"
	MirrorNames        = "names"
	MirrorDigests      = "digests"
	MirrorManifests    = "manifests"
	MirrorRepositories = "repositories"
)

var mirrorBuckets = []string{MirrorEntries, MirrorNames, MirrorDigests, MirrorManifests, MirrorRepositories}

// The keys of a mirror: its sync state (JSON) and its number of entries
// (uint64 big-endian).
var (
	KeyMirrorState = []byte("state")
	KeyMirrorCount = []byte("count")
)

// GetMirrorBucket returns v1/mirrors/<source>, nil when the source has no
// mirror yet.
func GetMirrorBucket(tx *bolt.Tx, source string) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyMirrors, []byte(source))
}

// CreateMirrorBucket returns v1/mirrors/<source>, created with its buckets
// if missing.
func CreateMirrorBucket(tx *bolt.Tx, source string) (*bolt.Bucket, error) {
	bkt, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyMirrors, []byte(source))
	if err != nil {
		return nil, err
	}
	for _, k := range mirrorBuckets {
		if _, err := bkt.CreateBucketIfNotExists([]byte(k)); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", k, err)
		}
	}
	return bkt, nil
}

// DeleteMirrorBucket deletes the mirror of source, if any.
func DeleteMirrorBucket(tx *bolt.Tx, source string) error {
	bkt := GetMirrorsBucket(tx)
	if bkt == nil || bkt.Bucket([]byte(source)) == nil {
		return nil
	}
	return bkt.DeleteBucket([]byte(source))
}

// GetFindBucket returns the bucket name of v1/find (one of the Find*
// constants), or nil before migration 3.
func GetFindBucket(tx *bolt.Tx, name string) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyFind, []byte(name))
}

// getBucket walks keys from the root, or returns nil when a bucket on the
// way does not exist.
func getBucket(tx *bolt.Tx, keys ...[]byte) *bolt.Bucket {
	bkt := tx.Bucket(keys[0])
	for _, k := range keys[1:] {
		if bkt == nil {
			return nil
		}
		bkt = bkt.Bucket(k)
	}
	return bkt
}

// createBucketIfNotExists walks keys from the root, creating each bucket
// that is missing. tx must be writable.
func createBucketIfNotExists(tx *bolt.Tx, keys ...[]byte) (*bolt.Bucket, error) {
	bkt, err := tx.CreateBucketIfNotExists(keys[0])
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", keys[0], err)
	}
	for _, k := range keys[1:] {
		if bkt, err = bkt.CreateBucketIfNotExists(k); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", k, err)
		}
	}
	return bkt, nil
}

func getMetaBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyMeta) }

func createMetaBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	return createBucketIfNotExists(tx, bucketKeyMeta)
}

// readSchemaVersion returns the recorded schema version, 0 for a new file.
func readSchemaVersion(tx *bolt.Tx) (uint64, error) {
	bkt := getMetaBucket(tx)
	if bkt == nil {
		return 0, nil
	}
	v := bkt.Get(keySchema)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("schema version: %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func writeSchemaVersion(tx *bolt.Tx, version uint64) error {
	bkt, err := createMetaBucket(tx)
	if err != nil {
		return err
	}
	return bkt.Put(keySchema, binary.BigEndian.AppendUint64(nil, version))
}

// GetRepositoriesBucket returns v1/repositories, whose keys are repository
// names and whose values are nil (each repository is a bucket).
func GetRepositoriesBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyRepositories)
}

// GetRepositoryBucket returns the bucket of repository name, or nil.
func GetRepositoryBucket(tx *bolt.Tx, name string) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyRepositories, []byte(name))
}

// CreateRepositoryBucket returns the bucket of repository name, creating it
// and its manifests, tags, blobs and referrers buckets if needed.
func CreateRepositoryBucket(tx *bolt.Tx, name string) (*bolt.Bucket, error) {
	bkt, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyRepositories, []byte(name))
	if err != nil {
		return nil, err
	}
	for _, k := range [][]byte{bucketKeyManifests, bucketKeyTags, bucketKeyBlobs, bucketKeyReferrers} {
		if _, err := bkt.CreateBucketIfNotExists(k); err != nil {
			return nil, fmt.Errorf("repository %s: create bucket %s: %w", name, k, err)
		}
	}
	return bkt, nil
}

// DeleteRepositoryBucketIfEmpty deletes the bucket of repository name when
// it has no manifest, tag, blob link or referrer left. It reports whether
// the bucket was deleted.
func DeleteRepositoryBucketIfEmpty(tx *bolt.Tx, name string) (bool, error) {
	bkt := GetRepositoryBucket(tx, name)
	if bkt == nil {
		return false, nil
	}
	for _, k := range [][]byte{bucketKeyManifests, bucketKeyTags, bucketKeyBlobs, bucketKeyReferrers} {
		if child := bkt.Bucket(k); child != nil {
			if first, _ := child.Cursor().First(); first != nil {
				return false, nil
			}
		}
	}
	if err := GetRepositoriesBucket(tx).DeleteBucket([]byte(name)); err != nil {
		return false, fmt.Errorf("repository %s: delete bucket: %w", name, err)
	}
	return true, nil
}

// GetManifestsBucket returns v1/repositories/<repo>/manifests, or nil. Its
// keys are manifest digests and its values JSON manifest records.
func GetManifestsBucket(repo *bolt.Bucket) *bolt.Bucket { return child(repo, bucketKeyManifests) }

// GetTagsBucket returns v1/repositories/<repo>/tags, or nil. Its keys are
// tags and its values manifest digests.
func GetTagsBucket(repo *bolt.Bucket) *bolt.Bucket { return child(repo, bucketKeyTags) }

// GetBlobsBucket returns v1/repositories/<repo>/blobs, or nil. Its keys are
// the digests of the blobs the repository may serve; values are empty.
func GetBlobsBucket(repo *bolt.Bucket) *bolt.Bucket { return child(repo, bucketKeyBlobs) }

// GetReferrersBucket returns v1/repositories/<repo>/referrers/<subject>, or
// nil. Its keys are the digests of the manifests whose subject is subject,
// and its values their artifact types.
func GetReferrersBucket(repo *bolt.Bucket, subject string) *bolt.Bucket {
	return child(child(repo, bucketKeyReferrers), []byte(subject))
}

// CreateReferrersBucket returns v1/repositories/<repo>/referrers/<subject>,
// creating it if needed. repo must come from CreateRepositoryBucket or
// GetRepositoryBucket in a writable transaction.
func CreateReferrersBucket(repo *bolt.Bucket, subject string) (*bolt.Bucket, error) {
	referrers, err := repo.CreateBucketIfNotExists(bucketKeyReferrers)
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucketKeyReferrers, err)
	}
	bkt, err := referrers.CreateBucketIfNotExists([]byte(subject))
	if err != nil {
		return nil, fmt.Errorf("create referrers bucket %s: %w", subject, err)
	}
	return bkt, nil
}

// DeleteReferrersBucketIfEmpty deletes referrers/<subject> of repo when it
// holds no entry.
func DeleteReferrersBucketIfEmpty(repo *bolt.Bucket, subject string) error {
	referrers := child(repo, bucketKeyReferrers)
	bkt := child(referrers, []byte(subject))
	if bkt == nil {
		return nil
	}
	if first, _ := bkt.Cursor().First(); first != nil {
		return nil
	}
	if err := referrers.DeleteBucket([]byte(subject)); err != nil {
		return fmt.Errorf("delete referrers bucket %s: %w", subject, err)
	}
	return nil
}

// GetUploadsBucket returns v1/uploads, whose keys are upload session ids
// and whose values are JSON upload sessions.
func GetUploadsBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyUploads) }

func child(bkt *bolt.Bucket, key []byte) *bolt.Bucket {
	if bkt == nil {
		return nil
	}
	return bkt.Bucket(key)
}

// GetImagesBucket returns v1/images, whose keys are manifest digests and
// whose values are the provider's JSON image records.
func GetImagesBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyImages) }

// GetRefDigestsBucket returns v1/refdigests, the refs of v1/refs by the
// digest they point at (see RefDigestKey).
func GetRefDigestsBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyRefDigests)
}

// RefDigestKey is the key of v1/refdigests of the ref repo:tag to dgst.
func RefDigestKey(dgst, repo, tag string) []byte { return []byte(dgst + "\x00" + repo + "\x00" + tag) }

// EncodeJobHead is the value of v1/jobheads of a job: its start and end
// (int64 big-endian Unix nanoseconds, 0 for a zero time) and its state,
// which a start of providerd decodes without a JSON parse.
func EncodeJobHead(state string, started, finished time.Time) []byte {
	b := make([]byte, 16, 16+len(state))
	binary.BigEndian.PutUint64(b[0:], uint64(unixNano(started)))
	binary.BigEndian.PutUint64(b[8:], uint64(unixNano(finished)))
	return append(b, state...)
}

// DecodeJobHead decodes a value of v1/jobheads (see EncodeJobHead).
func DecodeJobHead(v []byte) (state string, started, finished time.Time, err error) {
	if len(v) < 16 {
		return "", time.Time{}, time.Time{}, fmt.Errorf("job head of %d bytes, want at least 16", len(v))
	}
	return string(v[16:]), fromUnixNano(int64(binary.BigEndian.Uint64(v[0:]))),
		fromUnixNano(int64(binary.BigEndian.Uint64(v[8:]))), nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// GetJobHeadsBucket returns v1/jobheads: of each job record of v1/jobs,
// its id, state, start and end, which a start of providerd reads instead
// of the whole records.
func GetJobHeadsBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyJobHeads)
}

// GetImageNamesBucket returns v1/imagenames, the index of the installed
// images by lower-cased name and repository (see ImageNameKey).
func GetImageNamesBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyImageNames)
}

// ImageNameKey is the key of v1/imagenames that names the image dgst by
// name (its display name or its repository), lower-cased.
func ImageNameKey(name, dgst string) []byte {
	return []byte(strings.ToLower(name) + "\x00" + dgst)
}

// GetImageListBucket returns v1/imagelist, the listing view of the
// installed images: each image as the API shows it, under ImageListKey, so
// that a listing reads them in its order without decoding a record.
func GetImageListBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyImageList)
}

// ImageListKey is the key of v1/imagelist of the image dgst: its name,
// lower-cased, NUL, versionKey, NUL, dgst. versionKey must be prefix-free
// and order versions as the listing does (find.VersionKey).
func ImageListKey(name string, versionKey []byte, dgst string) []byte {
	k := make([]byte, 0, len(name)+len(versionKey)+len(dgst)+2)
	k = append(append(k, strings.ToLower(name)...), 0)
	k = append(append(k, versionKey...), 0)
	return append(k, dgst...)
}

// ImageListNeedsBuild reports whether v1/imagelist has still to be built
// from the image records: migration 8 asks for it when there are images,
// whose listing view only providerd knows how to write.
func ImageListNeedsBuild(tx *bolt.Tx) bool {
	b := getMetaBucket(tx)
	return b != nil && b.Get(keyImageListBuild) != nil
}

// ImageListBuilt records that v1/imagelist covers the image records.
func ImageListBuilt(tx *bolt.Tx) error {
	b := getMetaBucket(tx)
	if b == nil {
		return nil
	}
	return b.Delete(keyImageListBuild)
}

// GetRefsBucket returns v1/refs, whose keys are repository names and whose
// values are nil (each repository is a bucket).
func GetRefsBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyRefs) }

// GetRefBucket returns v1/refs/<repo>, whose keys are tags and whose values
// manifest digests, or nil.
func GetRefBucket(tx *bolt.Tx, repo string) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyRefs, []byte(repo))
}

// CreateRefBucket returns v1/refs/<repo>, creating it if needed. tx must be
// writable.
func CreateRefBucket(tx *bolt.Tx, repo string) (*bolt.Bucket, error) {
	return createBucketIfNotExists(tx, bucketKeyV1, bucketKeyRefs, []byte(repo))
}

// DeleteRefBucketIfEmpty deletes v1/refs/<repo> when it holds no tag. It
// reports whether the bucket was deleted.
func DeleteRefBucketIfEmpty(tx *bolt.Tx, repo string) (bool, error) {
	bkt := GetRefBucket(tx, repo)
	if bkt == nil {
		return false, nil
	}
	if first, _ := bkt.Cursor().First(); first != nil {
		return false, nil
	}
	if err := GetRefsBucket(tx).DeleteBucket([]byte(repo)); err != nil {
		return false, fmt.Errorf("refs %s: delete bucket: %w", repo, err)
	}
	return true, nil
}

// GetContainersBucket returns v1/containers, whose keys are container ids
// and whose values JSON container records: {"name", "image" (the manifest
// digest of its image), "state", "created"}.
func GetContainersBucket(tx *bolt.Tx) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyContainers)
}

// GetJobsBucket returns v1/jobs, whose keys are job ids and whose values
// JSON job records.
func GetJobsBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyJobs) }

// GetSourcesBucket returns v1/sources, whose keys are source names and whose
// values JSON sources.
func GetSourcesBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeySources) }

// GetLeasesBucket returns v1/leases, whose keys are the ids of the jobs that
// hold leases and whose values are nil (each job is a bucket).
func GetLeasesBucket(tx *bolt.Tx) *bolt.Bucket { return getBucket(tx, bucketKeyV1, bucketKeyLeases) }

// GetJobLeasesBucket returns v1/leases/<job>, whose keys are the digests
// that job leases (values are empty), or nil.
func GetJobLeasesBucket(tx *bolt.Tx, job string) *bolt.Bucket {
	return getBucket(tx, bucketKeyV1, bucketKeyLeases, []byte(job))
}

// CreateJobLeasesBucket returns v1/leases/<job>, creating it if needed. tx
// must be writable.
func CreateJobLeasesBucket(tx *bolt.Tx, job string) (*bolt.Bucket, error) {
	return createBucketIfNotExists(tx, bucketKeyV1, bucketKeyLeases, []byte(job))
}

// DeleteJobLeasesBucket deletes v1/leases/<job> and every lease in it. A job
// with no leases is not an error.
func DeleteJobLeasesBucket(tx *bolt.Tx, job string) error {
	leases := GetLeasesBucket(tx)
	if leases == nil || leases.Bucket([]byte(job)) == nil {
		return nil
	}
	if err := leases.DeleteBucket([]byte(job)); err != nil {
		return fmt.Errorf("leases of job %s: delete bucket: %w", job, err)
	}
	return nil
}
