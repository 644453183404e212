package meta

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// rawBolt opens a bbolt file without running any migration.
func rawBolt(t *testing.T) *bolt.DB {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	return bdb
}

func TestMigrationsAreOrdered(t *testing.T) {
	for i, m := range migrations {
		if m.version != uint64(i+1) {
			t.Errorf("migration %d (%s) has version %d, want %d", i, m.name, m.version, i+1)
		}
	}
	if last := migrations[len(migrations)-1].version; last != SchemaVersion {
		t.Errorf("last migration is %d, SchemaVersion is %d", last, SchemaVersion)
	}
}

// TestMigrations applies each migration to a database at the version before
// it and checks what the migration must have done.
func TestMigrations(t *testing.T) {
	tests := []struct {
		version uint64
		name    string
		check   func(t *testing.T, tx *bolt.Tx)
	}{
		{
			version: 1,
			name:    "create the v1 tree",
			check: func(t *testing.T, tx *bolt.Tx) {
				for _, path := range [][][]byte{
					{bucketKeyMeta},
					{bucketKeyV1, bucketKeyRepositories},
					{bucketKeyV1, bucketKeyUploads},
				} {
					if getBucket(tx, path...) == nil {
						t.Errorf("bucket %q missing", path)
					}
				}
			},
		},
		{
			version: 2,
			name:    "add the provider buckets",
			check: func(t *testing.T, tx *bolt.Tx) {
				for _, k := range [][]byte{
					bucketKeyImages, bucketKeyRefs, bucketKeyContainers,
					bucketKeyJobs, bucketKeySources, bucketKeyLeases,
				} {
					if getBucket(tx, bucketKeyV1, k) == nil {
						t.Errorf("bucket v1/%s missing", k)
					}
				}
				// The catalog's buckets are untouched.
				if getBucket(tx, bucketKeyV1, bucketKeyRepositories) == nil || getBucket(tx, bucketKeyV1, bucketKeyUploads) == nil {
					t.Error("migration 2 lost a bucket of version 1")
				}
			},
		},
		{
			version: 3,
			name:    "add the find index",
			check: func(t *testing.T, tx *bolt.Tx) {
				for _, k := range findBuckets {
					if GetFindBucket(tx, k) == nil {
						t.Errorf("bucket v1/find/%s missing", k)
					}
				}
				// No repository: nothing to build (see
				// TestMigrateFindIndexMarksACatalog).
				if GetFindBucket(tx, FindState).Get(KeyFindRebuild) != nil {
					t.Error("an empty catalog is marked for a build")
				}
			},
		},
		{
			version: 4,
			name:    "add the source mirrors",
			check: func(t *testing.T, tx *bolt.Tx) {
				if GetMirrorsBucket(tx) == nil {
					t.Error("bucket v1/mirrors missing")
				}
				if GetSourcesBucket(tx) == nil || GetFindBucket(tx, FindEntries) == nil {
					t.Error("migration 4 lost a bucket of version 3")
				}
			},
		},
		{
			version: 5,
			name:    "index the installed images by name",
			check: func(t *testing.T, tx *bolt.Tx) {
				if GetImageNamesBucket(tx) == nil {
					t.Error("bucket v1/imagenames missing")
				}
			},
		},
		{
			version: 6,
			name:    "keep the heads of the job records",
			check: func(t *testing.T, tx *bolt.Tx) {
				if GetJobHeadsBucket(tx) == nil {
					t.Error("bucket v1/jobheads missing")
				}
			},
		},
		{
			version: 7,
			name:    "index the refs by digest",
			check: func(t *testing.T, tx *bolt.Tx) {
				if GetRefDigestsBucket(tx) == nil {
					t.Error("bucket v1/refdigests missing")
				}
			},
		},
		{
			version: 8,
			name:    "add the listing view of the installed images",
			check: func(t *testing.T, tx *bolt.Tx) {
				if GetImageListBucket(tx) == nil {
					t.Error("bucket v1/imagelist missing")
				}
				if ImageListNeedsBuild(tx) {
					t.Error("a database without images asks for a build of the listing view")
				}
			},
		},
		{
			version: 9,
			name:    "list the signature state of the installed images",
			check: func(t *testing.T, tx *bolt.Tx) {
				if ImageListNeedsBuild(tx) {
					t.Error("a database without images asks for a build of the listing view")
				}
			},
		},
	}
	if len(tests) != len(migrations) {
		t.Fatalf("%d migration tests for %d migrations: add a test for each migration", len(tests), len(migrations))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if migrations[i].version != tt.version {
				t.Fatalf("migration %d has version %d, test expects %d", i, migrations[i].version, tt.version)
			}
			bdb := rawBolt(t)
			err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations[:i]) })
			if err != nil {
				t.Fatalf("migrating to %d: %v", tt.version-1, err)
			}
			err = bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations[:i+1]) })
			if err != nil {
				t.Fatalf("migration %d: %v", tt.version, err)
			}
			err = bdb.View(func(tx *bolt.Tx) error {
				v, err := readSchemaVersion(tx)
				if err != nil {
					return err
				}
				if v != tt.version {
					t.Errorf("recorded version = %d, want %d", v, tt.version)
				}
				tt.check(t, tx)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMigrateFindIndexMarksACatalog: a catalog of version 2 with a
// repository is marked for a build of its find index.
func TestMigrateFindIndexMarksACatalog(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:2]); err != nil {
			return err
		}
		if _, err := CreateRepositoryBucket(tx, "nanoserver"); err != nil {
			return err
		}
		return migrate(tx, migrations[:3])
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.View(func(tx *bolt.Tx) error {
		if GetFindBucket(tx, FindState).Get(KeyFindRebuild) == nil {
			t.Error("a catalog with a repository is not marked for a build")
		}
		return nil
	})
}

// TestMigrateImageListSigned: a database of version 8 with an image, its
// listing view built, is asked to build the view again.
func TestMigrateImageListSigned(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:8]); err != nil {
			return err
		}
		if err := GetImagesBucket(tx).Put([]byte("sha256:"+strings.Repeat("a", 64)), []byte("{}")); err != nil {
			return err
		}
		if err := ImageListBuilt(tx); err != nil {
			return err
		}
		return migrate(tx, migrations[:9])
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.View(func(tx *bolt.Tx) error {
		if !ImageListNeedsBuild(tx) {
			t.Error("a database with an image is not asked to rebuild its listing view")
		}
		return nil
	})
}

func TestMigrateSkipsAppliedMigrations(t *testing.T) {
	bdb := rawBolt(t)
	runs := 0
	list := []migration{{version: 1, name: "count", apply: func(*bolt.Tx) error { runs++; return nil }}}
	for range 2 {
		if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, list) }); err != nil {
			t.Fatal(err)
		}
	}
	if runs != 1 {
		t.Errorf("migration ran %d times, want 1", runs)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketKeyMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a file written by a newer schema")
	}
	if !errdefs.IsFailedPrecondition(err) {
		t.Errorf("error class: got %v, want ErrFailedPrecondition", err)
	}
}

func TestOpenFreshDatabaseIsUsable(t *testing.T) {
	db := testDB(t)
	err := db.View(context.Background(), func(tx *bolt.Tx) error {
		if GetRepositoriesBucket(tx) == nil || GetUploadsBucket(tx) == nil {
			t.Error("a fresh database lacks the v1 buckets")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrationKeepsCatalogData opens a version 1 database that holds a
// catalog repository and an upload, and checks that migration 2 keeps them.
func TestMigrationKeepsCatalogData(t *testing.T) {
	bdb := rawBolt(t)
	const repo, uploadID = "nanoserver", "0123456789abcdef"
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:1]); err != nil {
			return err
		}
		if _, err := CreateRepositoryBucket(tx, repo); err != nil {
			return err
		}
		return GetUploadsBucket(tx).Put([]byte(uploadID), []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) }); err != nil {
		t.Fatal(err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		if GetRepositoryBucket(tx, repo) == nil {
			t.Errorf("repository %s lost by the migration", repo)
		}
		if GetUploadsBucket(tx).Get([]byte(uploadID)) == nil {
			t.Errorf("upload %s lost by the migration", uploadID)
		}
		if GetImagesBucket(tx) == nil || GetLeasesBucket(tx) == nil {
			t.Error("provider buckets missing after the migration")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateImageNamesIndexesTheRecords: migration 5 indexes the image
// records of a database at version 4 by name and repository.
func TestMigrateImageNamesIndexesTheRecords(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:4]); err != nil {
			return err
		}
		return GetImagesBucket(tx).Put([]byte("sha256:1111"), []byte(`{"name":"NanoServer","repository":"nanoserver","version":"1.0"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) })
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = bdb.View(func(tx *bolt.Tx) error {
		return GetImageNamesBucket(tx).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nanoserver\x00sha256:1111"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
}

// TestMigrateJobHeads: migration 6 keeps the id, state and times of each
// job record of a database at version 5.
func TestMigrateJobHeads(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:5]); err != nil {
			return err
		}
		return GetJobsBucket(tx).Put([]byte("j1"), []byte(`{"id":"j1","state":"running","started":"2026-01-02T03:04:05Z","images":["a"],"blobs":[{"digest":"sha256:1111"}]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) }); err != nil {
		t.Fatal(err)
	}
	var v []byte
	err = bdb.View(func(tx *bolt.Tx) error {
		v = append(v, GetJobHeadsBucket(tx).Get([]byte("j1"))...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	state, started, finished, err := DecodeJobHead(v)
	if err != nil || state != "running" || !started.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || !finished.IsZero() {
		t.Fatalf("head %q %v %v, %v", state, started, finished, err)
	}
}

// TestMigrateRefDigests: migration 7 indexes the refs of a database at
// version 6 by digest.
func TestMigrateRefDigests(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:6]); err != nil {
			return err
		}
		b, err := CreateRefBucket(tx, "nanoserver")
		if err != nil {
			return err
		}
		return b.Put([]byte("latest"), []byte("sha256:1111"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) }); err != nil {
		t.Fatal(err)
	}
	err = bdb.View(func(tx *bolt.Tx) error {
		if GetRefDigestsBucket(tx).Get(RefDigestKey("sha256:1111", "nanoserver", "latest")) == nil {
			t.Error("the ref nanoserver:latest is not indexed by its digest")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateImageListAsksForABuild: migration 8 of a database with image
// records asks providerd to build the listing view, and ImageListBuilt
// clears the request.
func TestMigrateImageListAsksForABuild(t *testing.T) {
	bdb := rawBolt(t)
	err := bdb.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, migrations[:7]); err != nil {
			return err
		}
		return GetImagesBucket(tx).Put([]byte("sha256:1111"), []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) }); err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if !ImageListNeedsBuild(tx) {
			t.Error("no build of the listing view asked for, with an image record")
		}
		if err := ImageListBuilt(tx); err != nil {
			return err
		}
		if ImageListNeedsBuild(tx) {
			t.Error("ImageListBuilt left the request")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
