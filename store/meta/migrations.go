package meta

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// SchemaVersion is the schema version this code reads and writes: the
// version of the last migration.
const SchemaVersion = 9

// A migration moves the database from version-1 to version. It runs inside
// the write transaction of Open, so a failed migration changes nothing.
type migration struct {
	version uint64
	name    string
	apply   func(tx *bolt.Tx) error
}

// migrations is the ordered list of every schema change. Append new ones at
// the end and never edit one that has shipped.
var migrations = []migration{
	{version: 1, name: "create the v1 tree", apply: migrateCreateV1},
	{version: 2, name: "add the provider buckets", apply: migrateProviderBuckets},
	{version: 3, name: "add the find index", apply: migrateFindIndex},
	{version: 4, name: "add the source mirrors", apply: migrateMirrors},
	{version: 5, name: "index the installed images by name", apply: migrateImageNames},
	{version: 6, name: "keep the heads of the job records", apply: migrateJobHeads},
	{version: 7, name: "index the refs by digest", apply: migrateRefDigests},
	{version: 8, name: "add the listing view of the installed images", apply: migrateImageList},
	{version: 9, name: "list the signature state of the installed images", apply: migrateImageListSigned},
}

// migrateImageListSigned asks providerd to write the listing view again
// (ImageListNeedsBuild) when there are image records: its images now say
// what verified them (api.Image's Signed), which the views written before
// lack.
func migrateImageListSigned(tx *bolt.Tx) error {
	return migrateImageList(tx)
}

// migrateImageList adds v1/imagelist and, when there are image records,
// asks providerd to build it (ImageListNeedsBuild): its values are the
// images as the API shows them, which this package does not know how to
// write.
func migrateImageList(tx *bolt.Tx) error {
	if _, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyImageList); err != nil {
		return err
	}
	if images := GetImagesBucket(tx); images == nil {
		return nil
	} else if k, _ := images.Cursor().First(); k == nil {
		return nil
	}
	b, err := createMetaBucket(tx)
	if err != nil {
		return err
	}
	return b.Put(keyImageListBuild, []byte{})
}

// migrateRefDigests adds v1/refdigests and fills it from v1/refs.
func migrateRefDigests(tx *bolt.Tx) error {
	byDigest, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyRefDigests)
	if err != nil {
		return err
	}
	refs := GetRefsBucket(tx)
	if refs == nil {
		return nil
	}
	return refs.ForEachBucket(func(repo []byte) error {
		return refs.Bucket(repo).ForEach(func(tag, dgst []byte) error {
			return byDigest.Put(RefDigestKey(string(dgst), string(repo), string(tag)), []byte{})
		})
	})
}

// migrateJobHeads adds v1/jobheads and fills it from the job records,
// whose state, started and finished fields it reads.
func migrateJobHeads(tx *bolt.Tx) error {
	heads, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyJobHeads)
	if err != nil {
		return err
	}
	jobs := GetJobsBucket(tx)
	if jobs == nil {
		return nil
	}
	return jobs.ForEach(func(k, v []byte) error {
		var h struct {
			State    string    `json:"state"`
			Started  time.Time `json:"started"`
			Finished time.Time `json:"finished"`
		}
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("job record %s: %w", k, err)
		}
		return heads.Put(k, EncodeJobHead(h.State, h.Started, h.Finished))
	})
}

// migrateImageNames adds v1/imagenames and fills it from the image
// records, whose name, repository and digest fields it reads.
func migrateImageNames(tx *bolt.Tx) error {
	names, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyImageNames)
	if err != nil {
		return err
	}
	images := GetImagesBucket(tx)
	if images == nil {
		return nil
	}
	return images.ForEach(func(k, v []byte) error {
		var rec struct {
			Name       string `json:"name"`
			Repository string `json:"repository"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("image record %s: %w", k, err)
		}
		for _, n := range []string{rec.Name, rec.Repository} {
			if n == "" {
				continue
			}
			if err := names.Put(ImageNameKey(n, string(k)), []byte{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// migrateMirrors adds v1/mirrors, where providerd keeps the index of each
// source; each is synced from its source at the next start.
func migrateMirrors(tx *bolt.Tx) error {
	_, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyMirrors)
	return err
}

func migrateCreateV1(tx *bolt.Tx) error {
	if _, err := createMetaBucket(tx); err != nil {
		return err
	}
	if _, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyRepositories); err != nil {
		return err
	}
	_, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyUploads)
	return err
}

// providerBuckets are the buckets of v1 that migration 2 adds for providerd.
var providerBuckets = [][]byte{
	bucketKeyImages, bucketKeyRefs, bucketKeyContainers, bucketKeyJobs, bucketKeySources, bucketKeyLeases,
}

func migrateProviderBuckets(tx *bolt.Tx) error {
	for _, k := range providerBuckets {
		if _, err := createBucketIfNotExists(tx, bucketKeyV1, k); err != nil {
			return err
		}
	}
	return nil
}

// migrateFindIndex adds the buckets of the find index and, when there are
// repositories, marks it for a build: the index is derived from the manifest records by catalogd's find
// rules, which this package does not know, so catalogd builds it at its
// next start (catalog.Registry.BuildIndex).
func migrateFindIndex(tx *bolt.Tx) error {
	for _, k := range findBuckets {
		if _, err := createBucketIfNotExists(tx, bucketKeyV1, bucketKeyFind, []byte(k)); err != nil {
			return err
		}
	}
	// A new database has no repository to index.
	if k, _ := GetRepositoriesBucket(tx).Cursor().First(); k == nil {
		return nil
	}
	return GetFindBucket(tx, FindState).Put(KeyFindRebuild, []byte{})
}

// migrate applies, in order, every migration of list that is newer than the
// recorded version, and records the version after each one.
func migrate(tx *bolt.Tx, list []migration) error {
	current, err := readSchemaVersion(tx)
	if err != nil {
		return err
	}
	latest := uint64(0)
	if len(list) > 0 {
		latest = list[len(list)-1].version
	}
	if current > latest {
		return fmt.Errorf("schema version %d is newer than the supported version %d: %w",
			current, latest, errdefs.ErrFailedPrecondition)
	}
	for _, m := range list {
		if m.version <= current {
			continue
		}
		if err := m.apply(tx); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if err := writeSchemaVersion(tx, m.version); err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}
