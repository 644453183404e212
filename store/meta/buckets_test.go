package meta

import (
	"bufio"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// drawnPaths parses the schema drawing at the top of buckets.go into paths:
// buckets end with "/", keys do not, e.g. "v1/repositories/<name>/tags/<tag>".
func drawnPaths(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("buckets.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var paths, stack []string
	inDrawing := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		text, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			if inDrawing {
				break // the drawing is one block of indented comment lines
			}
			continue
		}
		inDrawing = true
		rest := strings.TrimLeft(text, " │├└─")
		depth := utf8.RuneCountInString(text[:len(text)-len(rest)]) / 4
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			t.Fatalf("empty drawing line %q", line)
		}
		name := fields[0]
		isBucket := strings.HasSuffix(name, "/")
		if !isBucket && (len(fields) < 2 || fields[1] != "->") {
			t.Fatalf("drawing line %q: a key must show its value after ->", line)
		}
		if depth > len(stack) {
			t.Fatalf("drawing line %q is indented below no bucket", line)
		}
		stack = append(stack[:depth], name)
		paths = append(paths, strings.Join(stack, ""))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no schema drawing found in buckets.go")
	}
	slices.Sort(paths)
	return paths
}

// dbPaths walks every bucket and key of db. Keys found in placeholders are
// written as their placeholder, e.g. the name of a test repository as
// "<name>".
func dbPaths(t *testing.T, db *DB, placeholders map[string]string) []string {
	t.Helper()
	var paths []string
	elem := func(k []byte) string {
		if p, ok := placeholders[string(k)]; ok {
			return p
		}
		return string(k)
	}
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, _ []byte) error {
			sub := b.Bucket(k)
			if sub == nil {
				paths = append(paths, prefix+elem(k))
				return nil
			}
			p := prefix + elem(k) + "/"
			paths = append(paths, p)
			return walk(p, sub)
		})
	}
	err := db.View(context.Background(), func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			p := elem(name) + "/"
			paths = append(paths, p)
			return walk(p, b)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

func TestDrawingMatchesFreshDatabase(t *testing.T) {
	var want []string
	for _, p := range drawnPaths(t) {
		if !strings.Contains(p, "<") {
			want = append(want, p)
		}
	}
	got := dbPaths(t, testDB(t), nil)
	if !slices.Equal(got, want) {
		t.Errorf("fresh database:\n got %q\nwant %q (the drawing without run-time keys)", got, want)
	}
}

// TestDrawingMatchesHelpers fills one of each run-time key through the
// exported helpers and checks that the result is exactly the drawing.
func TestDrawingMatchesHelpers(t *testing.T) {
	const (
		repoName = "microsoft/iis"
		dgst     = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
		subject  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
		tag      = "10.0.14393.0"
		uploadID = "0123456789abcdef0123456789abcdef"
		refRepo  = "nanoserver"
		jobID    = "fedcba9876543210fedcba9876543210"
	)
	db := testDB(t)
	err := db.Update(context.Background(), func(tx *bolt.Tx) error {
		repo, err := CreateRepositoryBucket(tx, repoName)
		if err != nil {
			return err
		}
		if err := GetManifestsBucket(repo).Put([]byte(dgst), []byte("{}")); err != nil {
			return err
		}
		if err := GetTagsBucket(repo).Put([]byte(tag), []byte(dgst)); err != nil {
			return err
		}
		if err := GetBlobsBucket(repo).Put([]byte(dgst), []byte{}); err != nil {
			return err
		}
		ref, err := CreateReferrersBucket(repo, subject)
		if err != nil {
			return err
		}
		if err := ref.Put([]byte(dgst), []byte("application/example")); err != nil {
			return err
		}
		if err := GetUploadsBucket(tx).Put([]byte(uploadID), []byte("{}")); err != nil {
			return err
		}
		if err := GetImagesBucket(tx).Put([]byte(dgst), []byte("{}")); err != nil {
			return err
		}
		if err := GetImageNamesBucket(tx).Put(ImageNameKey("IIS", dgst), []byte{}); err != nil {
			return err
		}
		if err := GetImageListBucket(tx).Put(ImageListKey("IIS", []byte("v"), dgst), []byte("{}")); err != nil {
			return err
		}
		if err := getMetaBucket(tx).Put(keyImageListBuild, []byte{}); err != nil {
			return err
		}
		refs, err := CreateRefBucket(tx, refRepo)
		if err != nil {
			return err
		}
		if err := refs.Put([]byte(tag), []byte(dgst)); err != nil {
			return err
		}
		if err := GetRefDigestsBucket(tx).Put(RefDigestKey(dgst, refRepo, tag), []byte{}); err != nil {
			return err
		}
		if err := GetContainersBucket(tx).Put([]byte(uploadID), []byte("{}")); err != nil {
			return err
		}
		if err := GetJobsBucket(tx).Put([]byte(uploadID), []byte("{}")); err != nil {
			return err
		}
		if err := GetJobHeadsBucket(tx).Put([]byte(uploadID), []byte("{}")); err != nil {
			return err
		}
		if err := GetSourcesBucket(tx).Put([]byte(repoName), []byte("{}")); err != nil {
			return err
		}
		for k, v := range map[string]string{FindEntries: "{}", FindNames: "", FindDigests: "", FindTags: "", FindChanges: "{}", FindState: ""} {
			if err := GetFindBucket(tx, k).Put([]byte(findKeys[k]), []byte(v)); err != nil {
				return err
			}
		}
		mirror, err := CreateMirrorBucket(tx, mirrorSource)
		if err != nil {
			return err
		}
		for k, v := range map[string]string{string(KeyMirrorState): "{}", string(KeyMirrorCount): "\x00"} {
			if err := mirror.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		for k, key := range map[string]string{
			MirrorEntries: findKeys[FindEntries], MirrorNames: findKeys[FindNames], MirrorDigests: findKeys[FindDigests],
			MirrorManifests: dgst, MirrorRepositories: refRepo,
		} {
			if err := mirror.Bucket([]byte(k)).Put([]byte(key), []byte("{}")); err != nil {
				return err
			}
		}
		leases, err := CreateJobLeasesBucket(tx, jobID)
		if err != nil {
			return err
		}
		return leases.Put([]byte(dgst), []byte{})
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dbPaths(t, db, map[string]string{
		repoName:                                 "<name>",
		dgst:                                     "<digest>",
		subject:                                  "<subject>",
		tag:                                      "<tag>",
		uploadID:                                 "<id>",
		refRepo:                                  "<repo>",
		jobID:                                    "<job>",
		findKeys[FindEntries]:                    "<entry>",
		findKeys[FindNames]:                      "<name>",
		findKeys[FindDigests]:                    "<digest>",
		findKeys[FindTags]:                       "<tag>",
		findKeys[FindChanges]:                    "<seq>",
		string(KeyFindRebuild):                   "<state>",
		mirrorSource:                             "<source>",
		string(ImageNameKey("IIS", dgst)):        "<name>",
		string(RefDigestKey(dgst, refRepo, tag)): "<ref>",
		string(ImageListKey("IIS", []byte("v"), dgst)): "<image>",
		string(keyImageListBuild):                      "<mark>",
	})
	if want := drawnPaths(t); !slices.Equal(got, want) {
		t.Errorf("database built by the helpers:\n got %q\nwant %q (the drawing)", got, want)
	}
}

// mirrorSource is the name of a source with a mirror.
const mirrorSource = "mirror-source"

// findKeys are keys of the find buckets, as catalogd writes them.
var findKeys = map[string]string{
	FindEntries: "microsoft/iis\x00sha256:1111",
	FindNames:   "iis\x00microsoft/iis\x00sha256:1111",
	FindDigests: "sha256:1111\x00microsoft/iis",
	FindTags:    "microsoft/iis\x00sha256:1111\x0010.0.14393.0",
	FindChanges: "\x00\x00\x00\x00\x00\x00\x00\x01",
	FindState:   string(KeyFindRebuild),
}

func TestRefAndLeaseBucketHelpers(t *testing.T) {
	const (
		repo = "nanoserver"
		job  = "0123456789abcdef"
		dgst = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	)
	db := testDB(t)
	ctx := context.Background()
	err := db.Update(ctx, func(tx *bolt.Tx) error {
		if GetRefBucket(tx, repo) != nil || GetJobLeasesBucket(tx, job) != nil {
			t.Error("a fresh database has a ref or lease bucket")
		}
		if deleted, err := DeleteRefBucketIfEmpty(tx, repo); err != nil || deleted {
			t.Errorf("DeleteRefBucketIfEmpty of a missing bucket = %v, %v; want false, nil", deleted, err)
		}
		if err := DeleteJobLeasesBucket(tx, job); err != nil {
			t.Errorf("DeleteJobLeasesBucket of a missing bucket: %v", err)
		}
		refs, err := CreateRefBucket(tx, repo)
		if err != nil {
			return err
		}
		if err := refs.Put([]byte("latest"), []byte(dgst)); err != nil {
			return err
		}
		if deleted, err := DeleteRefBucketIfEmpty(tx, repo); err != nil || deleted {
			t.Errorf("DeleteRefBucketIfEmpty of a bucket with a tag = %v, %v; want false, nil", deleted, err)
		}
		if err := refs.Delete([]byte("latest")); err != nil {
			return err
		}
		if deleted, err := DeleteRefBucketIfEmpty(tx, repo); err != nil || !deleted {
			t.Errorf("DeleteRefBucketIfEmpty of an empty bucket = %v, %v; want true, nil", deleted, err)
		}
		leases, err := CreateJobLeasesBucket(tx, job)
		if err != nil {
			return err
		}
		if err := leases.Put([]byte(dgst), nil); err != nil {
			return err
		}
		return DeleteJobLeasesBucket(tx, job)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx *bolt.Tx) error {
		if GetRefBucket(tx, repo) != nil {
			t.Error("the empty ref bucket is still there")
		}
		if GetJobLeasesBucket(tx, job) != nil {
			t.Error("the job's lease bucket is still there")
		}
		if GetRefsBucket(tx) == nil || GetLeasesBucket(tx) == nil {
			t.Error("v1/refs or v1/leases was deleted with its child")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
