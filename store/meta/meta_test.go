package meta

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// testDB opens a database in a fresh temporary directory and closes it when
// the test ends.
func testDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestOpenRecordsSchemaVersion(t *testing.T) {
	db := testDB(t)
	var got uint64
	err := db.View(context.Background(), func(tx *bolt.Tx) error {
		var err error
		got, err = readSchemaVersion(tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != SchemaVersion {
		t.Fatalf("schema version = %d, want %d", got, SchemaVersion)
	}
}

func TestOpenAgainKeepsData(t *testing.T) {
	tests := []struct {
		name string
		opts []Opt
	}{
		{name: "defaults"},
		{name: "no sync", opts: []Opt{WithNoSync(), WithLockTimeout(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meta.db")
			db, err := Open(path, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if db.Path() != path {
				t.Errorf("Path() = %q, want %q", db.Path(), path)
			}
			err = db.Update(context.Background(), func(tx *bolt.Tx) error {
				repo, err := CreateRepositoryBucket(tx, "nanoserver")
				if err != nil {
					return err
				}
				return GetTagsBucket(repo).Put([]byte("latest"), []byte("sha256:abc"))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			db, err = Open(path, tt.opts...)
			if err != nil {
				t.Fatalf("second Open: %v", err)
			}
			defer db.Close()
			var got string
			err = db.View(context.Background(), func(tx *bolt.Tx) error {
				got = string(GetTagsBucket(GetRepositoryBucket(tx, "nanoserver")).Get([]byte("latest")))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != "sha256:abc" {
				t.Fatalf("tag after reopen = %q, want sha256:abc", got)
			}
		})
	}
}

func TestOpenLockedFileIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// flock(2) locks belong to the open file, so a second Open in the same
	// process conflicts as a second process would.
	second, err := Open(path, WithLockTimeout(50*time.Millisecond))
	if err == nil {
		second.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errdefs.IsUnavailable(err) {
		t.Errorf("error class: got %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file %s", err, path)
	}
}

func TestTransactionsCheckContext(t *testing.T) {
	db := testDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name string
		run  func(func(*bolt.Tx) error) error
	}{
		{name: "view", run: func(fn func(*bolt.Tx) error) error { return db.View(ctx, fn) }},
		{name: "update", run: func(fn func(*bolt.Tx) error) error { return db.Update(ctx, fn) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			err := tt.run(func(*bolt.Tx) error { called = true; return nil })
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v, want context.Canceled", err)
			}
			if called {
				t.Error("fn ran with a cancelled context")
			}
		})
	}
}

func TestUpdateRollsBackOnError(t *testing.T) {
	db := testDB(t)
	boom := errors.New("boom")
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		if _, err := CreateRepositoryBucket(tx, "iis"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want the error of fn", err)
	}
	err = db.View(context.Background(), func(tx *bolt.Tx) error {
		if GetRepositoryBucket(tx, "iis") != nil {
			t.Error("repository bucket survived a rolled back Update")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeleteBucketsIfEmpty(t *testing.T) {
	tests := []struct {
		name    string
		fill    func(repo *bolt.Bucket) error
		deleted bool
	}{
		{name: "empty repository", fill: func(*bolt.Bucket) error { return nil }, deleted: true},
		{name: "with a tag", fill: func(r *bolt.Bucket) error { return GetTagsBucket(r).Put([]byte("v1"), []byte("d")) }},
		{name: "with a blob link", fill: func(r *bolt.Bucket) error { return GetBlobsBucket(r).Put([]byte("d"), nil) }},
		{name: "with a manifest", fill: func(r *bolt.Bucket) error { return GetManifestsBucket(r).Put([]byte("d"), []byte("{}")) }},
		{name: "with a referrer", fill: func(r *bolt.Bucket) error {
			b, err := CreateReferrersBucket(r, "subject")
			if err != nil {
				return err
			}
			return b.Put([]byte("d"), []byte("type"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testDB(t)
			var deleted bool
			err := db.Update(context.Background(), func(tx *bolt.Tx) error {
				repo, err := CreateRepositoryBucket(tx, "app")
				if err != nil {
					return err
				}
				if err := tt.fill(repo); err != nil {
					return err
				}
				deleted, err = DeleteRepositoryBucketIfEmpty(tx, "app")
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if deleted != tt.deleted {
				t.Errorf("deleted = %v, want %v", deleted, tt.deleted)
			}
		})
	}
}

func TestDeleteReferrersBucketIfEmpty(t *testing.T) {
	db := testDB(t)
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		repo, err := CreateRepositoryBucket(tx, "app")
		if err != nil {
			return err
		}
		full, err := CreateReferrersBucket(repo, "full")
		if err != nil {
			return err
		}
		if err := full.Put([]byte("d"), nil); err != nil {
			return err
		}
		if _, err := CreateReferrersBucket(repo, "empty"); err != nil {
			return err
		}
		for _, s := range []string{"full", "empty", "absent"} {
			if err := DeleteReferrersBucketIfEmpty(repo, s); err != nil {
				return err
			}
		}
		if GetReferrersBucket(repo, "full") == nil {
			t.Error("a referrers bucket with an entry was deleted")
		}
		if GetReferrersBucket(repo, "empty") != nil {
			t.Error("an empty referrers bucket was kept")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
