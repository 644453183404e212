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
		return GetUploadsBucket(tx).Put([]byte(uploadID), []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dbPaths(t, db, map[string]string{
		repoName: "<name>",
		dgst:     "<digest>",
		subject:  "<subject>",
		tag:      "<tag>",
		uploadID: "<id>",
	})
	if want := drawnPaths(t); !slices.Equal(got, want) {
		t.Errorf("database built by the helpers:\n got %q\nwant %q (the drawing)", got, want)
	}
}
