package meta

// The schema of the metadata database, drawn as a tree. A name ending in "/"
// is a bucket; <...> stands for a key chosen at run time; "->" shows what a
// key holds. buckets_test.go parses this drawing and compares it with the
// buckets the code creates, so keep the two in step.
//
//	meta/
//	└── schema -> schema version, uint64 big-endian
//	v1/
//	├── repositories/
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
//	└── uploads/
//	    └── <id> -> upload session (JSON)

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Bucket and key names. The catalog reaches them through the helpers below.
var (
	bucketKeyMeta         = []byte("meta")
	keySchema             = []byte("schema")
	bucketKeyV1           = []byte("v1")
	bucketKeyRepositories = []byte("repositories")
	bucketKeyManifests    = []byte("manifests")
	bucketKeyTags         = []byte("tags")
	bucketKeyBlobs        = []byte("blobs")
	bucketKeyReferrers    = []byte("referrers")
	bucketKeyUploads      = []byte("uploads")
)

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
