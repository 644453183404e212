package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// testDB opens a metadata database in a temporary directory and closes it
// when the test ends.
func testDB(t *testing.T) *meta.DB {
	t.Helper()
	db, err := meta.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testEnv is a Registry over a real content store and bbolt file.
type testEnv struct {
	*Registry
	cs content.Store
	db *meta.DB
}

func newTestEnv(t *testing.T, opts ...RegistryOpt) *testEnv {
	t.Helper()
	cs, err := content.NewStore(filepath.Join(t.TempDir(), "content"))
	if err != nil {
		t.Fatal(err)
	}
	db := testDB(t)
	env := &testEnv{Registry: NewRegistry(cs, db, opts...), cs: cs, db: db}
	t.Cleanup(func() { env.checkInvariants(t) })
	return env
}

// checkInvariants verifies what every operation must preserve: every link
// and manifest record points at committed content, every tag and referrer
// entry at a record.
func (e *testEnv) checkInvariants(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var committed []digest.Digest
	err := e.db.View(ctx, func(tx *bolt.Tx) error {
		repos := meta.GetRepositoriesBucket(tx)
		return repos.ForEachBucket(func(name []byte) error {
			rb := repos.Bucket(name)
			meta.GetBlobsBucket(rb).ForEach(func(k, _ []byte) error {
				committed = append(committed, digest.Digest(k))
				return nil
			})
			meta.GetManifestsBucket(rb).ForEach(func(k, _ []byte) error {
				committed = append(committed, digest.Digest(k))
				return nil
			})
			meta.GetTagsBucket(rb).ForEach(func(k, v []byte) error {
				if meta.GetManifestsBucket(rb).Get(v) == nil {
					t.Errorf("%s: tag %s points at %s, which has no record", name, k, v)
				}
				return nil
			})
			refs := rb.Bucket([]byte("referrers"))
			return refs.ForEachBucket(func(subject []byte) error {
				return refs.Bucket(subject).ForEach(func(k, _ []byte) error {
					if meta.GetManifestsBucket(rb).Get(k) == nil {
						t.Errorf("%s: referrer %s of %s has no record", name, k, subject)
					}
					return nil
				})
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range committed {
		if _, err := e.cs.Info(ctx, d); err != nil {
			t.Errorf("bbolt refers to %s, which is not committed: %v", d, err)
		}
	}
	// The find index answers as a rebuild from the repositories does.
	if repos, err := e.Repositories(ctx, -1, ""); err == nil && len(repos) > 0 {
		checkIndex(t, e.Registry, repos)
	}
	if st, err := e.cs.ListStatuses(ctx); err != nil {
		t.Error(err)
	} else {
		var sessions []string
		e.db.View(ctx, func(tx *bolt.Tx) error {
			return meta.GetUploadsBucket(tx).ForEach(func(k, _ []byte) error {
				sessions = append(sessions, uploadRef(string(k)))
				return nil
			})
		})
		for _, s := range st {
			if !contains(sessions, s.Ref) {
				t.Errorf("ingest %q is left over with no upload session", s.Ref)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *testEnv) pushBlob(t *testing.T, repo string, data []byte) ocispec.Descriptor {
	t.Helper()
	info, err := e.PutBlob(context.Background(), repo, "", int64(len(data)), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: info.Digest, Size: info.Size}
}

// image is a test image: a config and layers pushed into a repository, and
// the manifest that lists them (not pushed).
type image struct {
	manifest ocispec.Manifest
	body     []byte
	digest   digest.Digest
}

func (i *image) marshal(t *testing.T) {
	t.Helper()
	b, err := json.Marshal(i.manifest)
	if err != nil {
		t.Fatal(err)
	}
	i.body, i.digest = b, digest.FromBytes(b)
}

// newImage pushes a config with os.version and one layer per content into
// repo, and builds their manifest.
func (e *testEnv) newImage(t *testing.T, repo string, layers ...string) *image {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"os": "windows", "os.version": "10.0.14393.0", "architecture": "amd64", "layers": layers})
	config := e.pushBlob(t, repo, cfg)
	config.MediaType = ocispec.MediaTypeImageConfig
	img := &image{manifest: ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config,
		Layers:    []ocispec.Descriptor{},
	}}
	for _, l := range layers {
		img.manifest.Layers = append(img.manifest.Layers, e.pushBlob(t, repo, []byte(l)))
	}
	img.marshal(t)
	return img
}

func (e *testEnv) putImage(t *testing.T, repo, ref string, img *image) ManifestRecord {
	t.Helper()
	rec, err := e.PutManifest(context.Background(), repo, ref, img.manifest.MediaType, img.body)
	if err != nil {
		t.Fatalf("PutManifest %s:%s: %v", repo, ref, err)
	}
	return rec
}

func readAll(t *testing.T, ra content.ReaderAt) []byte {
	t.Helper()
	defer ra.Close()
	b, err := io.ReadAll(content.NewSectionReader(ra))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

// snapshot is the observable state of a repository.
type snapshot struct {
	Tagged []TaggedManifest
	Repos  []string
}

func (e *testEnv) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	tagged, err := e.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := e.Repositories(ctx, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{Tagged: tagged, Repos: repos}
}

func TestPushAndPull(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "microsoft/iis", "layer one", "layer two")
	img.manifest.Annotations = map[string]string{find.AnnotationTitle: "IIS", find.AnnotationVersion: "10.0.14393.0"}
	img.marshal(t)

	rec := env.putImage(t, "microsoft/iis", "10.0.14393.0", img)
	wantSize := int64(len(img.body)) + img.manifest.Config.Size
	for _, l := range img.manifest.Layers {
		wantSize += l.Size
	}
	if rec.Digest != img.digest || rec.MediaType != ocispec.MediaTypeImageManifest || rec.Size != int64(len(img.body)) {
		t.Errorf("record = %+v, want digest %s, OCI manifest, size %d", rec, img.digest, len(img.body))
	}
	if rec.ContentSize != wantSize {
		t.Errorf("ContentSize = %d, want %d", rec.ContentSize, wantSize)
	}
	if rec.OSVersion != "10.0.14393.0" {
		t.Errorf("OSVersion = %q, want 10.0.14393.0", rec.OSVersion)
	}
	if rec.Pushed.IsZero() || rec.Pushed.Location().String() != "UTC" {
		t.Errorf("Pushed = %v, want a UTC time", rec.Pushed)
	}
	if rec.Annotations[find.AnnotationTitle] != "IIS" {
		t.Errorf("annotations = %v", rec.Annotations)
	}

	for _, ref := range []string{"10.0.14393.0", img.digest.String()} {
		t.Run("get by "+ref, func(t *testing.T) {
			got, ra, err := env.GetManifest(ctx, "microsoft/iis", ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, ra), img.body) {
				t.Error("manifest bytes differ")
			}
			if !reflect.DeepEqual(got, rec) {
				t.Errorf("record = %+v, want %+v", got, rec)
			}
		})
	}

	for i, l := range img.manifest.Layers {
		info, err := env.StatBlob(ctx, "microsoft/iis", l.Digest)
		if err != nil || info.Size != l.Size {
			t.Fatalf("StatBlob layer %d = %+v, %v", i, info, err)
		}
		ra, err := env.OpenBlob(ctx, "microsoft/iis", l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(readAll(t, ra)); got != []string{"layer one", "layer two"}[i] {
			t.Errorf("layer %d = %q", i, got)
		}
	}
	// The manifest can be fetched as a blob too.
	if _, err := env.StatBlob(ctx, "microsoft/iis", img.digest); err != nil {
		t.Errorf("StatBlob of the manifest digest: %v", err)
	}
	// Another repository may not serve these blobs.
	_, err := env.StatBlob(ctx, "nanoserver", img.manifest.Layers[0].Digest)
	wantErr(t, err, ErrBlobUnknown)
	_, err = env.OpenBlob(ctx, "nanoserver", img.manifest.Layers[0].Digest)
	wantErr(t, err, ErrBlobUnknown)
}

func TestResolveManifestErrors(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "nanoserver", "base")
	env.putImage(t, "nanoserver", "10.0.10586.0", img)

	tests := []struct {
		name string
		repo string
		ref  string
		want error
	}{
		{name: "unknown tag", repo: "nanoserver", ref: "9.9", want: ErrManifestUnknown},
		{name: "unknown digest", repo: "nanoserver", ref: digest.FromString("x").String(), want: ErrManifestUnknown},
		{name: "unknown repository", repo: "windowsservercore", ref: "10.0.10586.0", want: ErrNameUnknown},
		{name: "malformed digest", repo: "nanoserver", ref: "sha256:baddigeststring", want: ErrDigestInvalid},
		{name: "invalid tag", repo: "nanoserver", ref: "-bad", want: ErrTagInvalid},
		{name: "invalid name", repo: "Nano", ref: "latest", want: ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.ResolveManifest(ctx, tt.repo, tt.ref)
			wantErr(t, err, tt.want)
			_, _, err = env.GetManifest(ctx, tt.repo, tt.ref)
			wantErr(t, err, tt.want)
		})
	}
}

func TestPutManifestReferences(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "app", "data")

	tests := []struct {
		name       string
		ref        string
		wantDigest digest.Digest
		wantErr    error
	}{
		{name: "tag", ref: "v1", wantDigest: digest.SHA256.FromBytes(img.body)},
		{name: "sha256 digest", ref: digest.SHA256.FromBytes(img.body).String(), wantDigest: digest.SHA256.FromBytes(img.body)},
		{name: "sha512 digest", ref: digest.SHA512.FromBytes(img.body).String(), wantDigest: digest.SHA512.FromBytes(img.body)},
		{name: "digest of other bytes", ref: digest.FromString("other").String(), wantErr: ErrDigestMismatch},
		{name: "malformed digest", ref: "sha256:baddigeststring", wantErr: ErrDigestInvalid},
		{name: "invalid tag", ref: "bad/tag", wantErr: ErrTagInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.snapshot(t)
			rec, err := env.PutManifest(ctx, "app", tt.ref, ocispec.MediaTypeImageManifest, img.body)
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr)
				if errdefs.HTTPStatus(err) != 400 {
					t.Errorf("status of %v = %d, want 400", err, errdefs.HTTPStatus(err))
				}
				if after := env.snapshot(t); !reflect.DeepEqual(before, after) {
					t.Errorf("a rejected put changed the catalog:\n%+v\n%+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Digest != tt.wantDigest {
				t.Fatalf("digest = %s, want %s", rec.Digest, tt.wantDigest)
			}
			got, ra, err := env.GetManifest(ctx, "app", tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest != tt.wantDigest || !bytes.Equal(readAll(t, ra), img.body) {
				t.Errorf("GetManifest(%s) = %s", tt.ref, got.Digest)
			}
		})
	}
}

func TestPutManifestRejects(t *testing.T) {
	ctx := context.Background()
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("never pushed"), Size: 12}

	tests := []struct {
		name      string
		mediaType string
		// body builds the manifest from an image whose blobs are pushed.
		body   func(t *testing.T, env *testEnv, img *image) []byte
		want   error
		status int
	}{
		{
			name: "oversize",
			body: func(t *testing.T, env *testEnv, img *image) []byte {
				img.manifest.Annotations = map[string]string{"pad": strings.Repeat("x", 4096)}
				img.marshal(t)
				return img.body
			},
			want: ErrManifestTooLarge, status: 413,
		},
		{
			name: "invalid JSON",
			body: func(*testing.T, *testEnv, *image) []byte { return []byte(`{"schemaVersion": 2,`) },
			want: ErrManifestInvalid, status: 400,
		},
		{
			name:      "media type disagrees with the body",
			mediaType: ocispec.MediaTypeImageIndex,
			body:      func(_ *testing.T, _ *testEnv, img *image) []byte { return img.body },
			want:      ErrManifestInvalid, status: 400,
		},
		{
			name:      "unknown media type",
			mediaType: "application/vnd.example+json",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.MediaType = ""
				img.marshal(t)
				return img.body
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name:      "docker schema 1",
			mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws",
			body: func(*testing.T, *testEnv, *image) []byte {
				return []byte(`{"schemaVersion": 1, "name": "x", "fsLayers": []}`)
			},
			want: ErrUnsupported, status: 501,
		},
		{
			name: "schema version 1",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.SchemaVersion = 1
				img.marshal(t)
				return img.body
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name: "missing distributable layer",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.Layers = append(img.manifest.Layers, missing)
				img.marshal(t)
				return img.body
			},
			want: ErrManifestBlobUnknown, status: 400,
		},
		{
			name: "missing config",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.Config.Digest = digest.FromString("no config")
				img.marshal(t)
				return img.body
			},
			want: ErrManifestBlobUnknown, status: 400,
		},
		{
			name: "layer size differs from the blob",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.Layers[0].Size++
				img.marshal(t)
				return img.body
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name: "malformed layer digest",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.Layers[0].Digest = "sha256:nothex"
				img.marshal(t)
				return img.body
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name: "data field that does not match",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				img.manifest.Layers[0].Data = []byte("something else")
				img.marshal(t)
				return img.body
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name:      "index listing a missing manifest",
			mediaType: ocispec.MediaTypeImageIndex,
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				b, _ := json.Marshal(ocispec.Index{
					Versioned: specs.Versioned{SchemaVersion: 2},
					MediaType: ocispec.MediaTypeImageIndex,
					Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: img.digest, Size: int64(len(img.body))}},
				})
				return b
			},
			want: ErrManifestBlobUnknown, status: 400,
		},
		{
			name:      "index with layers",
			mediaType: ocispec.MediaTypeImageIndex,
			body: func(*testing.T, *testEnv, *image) []byte {
				return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"layers":[]}`)
			},
			want: ErrManifestInvalid, status: 400,
		},
		{
			name: "image manifest with manifests",
			body: func(t *testing.T, _ *testEnv, img *image) []byte {
				var m map[string]any
				json.Unmarshal(img.body, &m)
				m["manifests"] = []any{}
				b, _ := json.Marshal(m)
				return b
			},
			want: ErrManifestInvalid, status: 400,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, WithMaxManifestSize(2048))
			base := env.newImage(t, "app", "kept")
			env.putImage(t, "app", "v1", base)
			img := env.newImage(t, "app", "new layer")
			body := tt.body(t, env, img)
			mediaType := tt.mediaType
			if mediaType == "" {
				mediaType = ocispec.MediaTypeImageManifest
			}
			before := env.snapshot(t)

			for _, ref := range []string{"v1", "v2", digest.FromBytes(body).String()} {
				_, err := env.PutManifest(ctx, "app", ref, mediaType, body)
				wantErr(t, err, tt.want)
				if got := errdefs.HTTPStatus(err); got != tt.status {
					t.Errorf("status = %d, want %d", got, tt.status)
				}
			}
			if after := env.snapshot(t); !reflect.DeepEqual(before, after) {
				t.Errorf("a rejected put changed the catalog:\n%+v\n%+v", before, after)
			}
			if _, err := env.cs.Info(ctx, digest.FromBytes(body)); !errdefs.IsNotFound(err) {
				t.Errorf("the rejected manifest is in the content store: %v", err)
			}
		})
	}
}

func TestNonDistributableLayers(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "windowsservercore", "app layer")
	var foreignSize int64
	for i, mt := range []string{
		MediaTypeImageLayerNonDistributable,
		MediaTypeImageLayerNonDistributableGzip,
		MediaTypeImageLayerNonDistributableZstd,
		MediaTypeDockerForeignLayer,
	} {
		d := digest.FromString(mt)
		size := int64(1000 * (i + 1))
		foreignSize += size
		img.manifest.Layers = append(img.manifest.Layers, ocispec.Descriptor{
			MediaType: mt, Digest: d, Size: size,
			URLs: []string{"https://example.com/blobs/" + d.Encoded()},
		})
	}
	img.marshal(t)
	rec := env.putImage(t, "windowsservercore", "10.0.14393.0", img)
	want := int64(len(img.body)) + img.manifest.Config.Size + int64(len("app layer")) + foreignSize
	if rec.ContentSize != want {
		t.Errorf("ContentSize = %d, want %d (foreign layers included)", rec.ContentSize, want)
	}
	if _, err := env.ResolveManifest(ctx, "windowsservercore", "10.0.14393.0"); err != nil {
		t.Fatal(err)
	}
	// A foreign layer is not served.
	_, err := env.StatBlob(ctx, "windowsservercore", img.manifest.Layers[1].Digest)
	wantErr(t, err, ErrBlobUnknown)
}

func TestDockerManifests(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	cfg := env.pushBlob(t, "app", []byte(`{"os":"windows","os.version":"10.0.10586.0"}`))
	layer := env.pushBlob(t, "app", []byte("docker layer"))
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifest,
		"config":        map[string]any{"mediaType": MediaTypeDockerConfig, "digest": cfg.Digest, "size": cfg.Size},
		"layers": []any{
			map[string]any{"mediaType": MediaTypeDockerForeignLayer, "digest": digest.FromString("foreign"), "size": 99,
				"urls": []string{"https://example.com/foreign"}},
			map[string]any{"mediaType": MediaTypeDockerLayer, "digest": layer.Digest, "size": layer.Size},
		},
	})
	rec, err := env.PutManifest(ctx, "app", "docker", MediaTypeDockerManifest, body)
	if err != nil {
		t.Fatal(err)
	}
	if rec.OSVersion != "10.0.10586.0" || rec.MediaType != MediaTypeDockerManifest {
		t.Errorf("record = %+v", rec)
	}
	list, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifestList,
		"manifests": []any{map[string]any{
			"mediaType": MediaTypeDockerManifest, "digest": rec.Digest, "size": rec.Size,
			"platform": map[string]string{"os": "windows", "architecture": "amd64"},
		}},
	})
	lrec, err := env.PutManifest(ctx, "app", "list", MediaTypeDockerManifestList, list)
	if err != nil {
		t.Fatal(err)
	}
	if lrec.ContentSize != int64(len(list))+rec.Size {
		t.Errorf("list ContentSize = %d, want %d", lrec.ContentSize, int64(len(list))+rec.Size)
	}
}

func TestPutBlob(t *testing.T) {
	ctx := context.Background()
	data := []byte("some blob data")
	tests := []struct {
		name     string
		expected digest.Digest
		size     int64
		data     []byte
		want     digest.Digest
		wantErr  error
	}{
		{name: "digest computed", size: int64(len(data)), data: data, want: digest.SHA256.FromBytes(data)},
		{name: "size unknown", size: -1, data: data, want: digest.SHA256.FromBytes(data)},
		{name: "sha256 expected", expected: digest.SHA256.FromBytes(data), size: int64(len(data)), data: data, want: digest.SHA256.FromBytes(data)},
		{name: "sha512 expected", expected: digest.SHA512.FromBytes(data), size: -1, data: data, want: digest.SHA512.FromBytes(data)},
		{name: "empty blob", expected: digest.SHA256.FromBytes(nil), size: 0, data: nil, want: digest.SHA256.FromBytes(nil)},
		{name: "wrong digest", expected: digest.FromString("other"), size: -1, data: data, wantErr: ErrDigestMismatch},
		{name: "wrong size", size: int64(len(data)) + 1, data: data, wantErr: ErrSizeInvalid},
		{name: "malformed digest", expected: "sha256:zz", size: -1, data: data, wantErr: ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			info, err := env.PutBlob(ctx, "app", tt.expected, tt.size, bytes.NewReader(tt.data))
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr)
				for _, d := range []digest.Digest{digest.SHA256.FromBytes(tt.data), tt.expected} {
					if d.Validate() != nil {
						continue
					}
					if _, err := env.cs.Info(ctx, d); !errdefs.IsNotFound(err) {
						t.Errorf("content %s after a failed put: %v", d, err)
					}
				}
				if repos, _ := env.Repositories(ctx, -1, ""); len(repos) != 0 {
					t.Errorf("repositories after a failed put: %v", repos)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Digest != tt.want || info.Size != int64(len(tt.data)) {
				t.Fatalf("info = %+v, want %s of %d bytes", info, tt.want, len(tt.data))
			}
			ra, err := env.OpenBlob(ctx, "app", tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, ra), tt.data) {
				t.Error("blob bytes differ")
			}
		})
	}
}

// failReader fails the test if it is read.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("the body of a known blob was read")
	return 0, io.ErrUnexpectedEOF
}

func TestPutBlobKnownSkipsBody(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	d := env.pushBlob(t, "a", []byte("shared")).Digest
	info, err := env.PutBlob(ctx, "b", d, 6, failReader{t})
	if err != nil || info.Digest != d {
		t.Fatalf("PutBlob of a known blob = %+v, %v", info, err)
	}
	if _, err := env.StatBlob(ctx, "b", d); err != nil {
		t.Errorf("not linked into b: %v", err)
	}
	_, err = env.PutBlob(ctx, "c", d, 7, failReader{t})
	wantErr(t, err, ErrSizeInvalid)
	if _, err := env.StatBlob(ctx, "c", d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("linked despite the wrong size: %v", err)
	}
}

func TestChunkedUpload(t *testing.T) {
	ctx := context.Background()
	chunks := []string{"first chunk, ", "second chunk, ", "last chunk"}
	whole := []byte(strings.Join(chunks, ""))

	tests := []struct {
		name   string
		digest digest.Digest
	}{
		{name: "sha256", digest: digest.SHA256.FromBytes(whole)},
		{name: "sha512", digest: digest.SHA512.FromBytes(whole)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t)
			up, err := env.StartUpload(ctx, "app")
			if err != nil {
				t.Fatal(err)
			}
			if len(up.ID) != 32 || up.Offset != 0 || up.Repository != "app" {
				t.Fatalf("StartUpload = %+v", up)
			}
			st, err := env.WriteUpload(ctx, "app", up.ID, 0, strings.NewReader(chunks[0]))
			if err != nil || st.Offset != int64(len(chunks[0])) {
				t.Fatalf("first chunk: %+v, %v", st, err)
			}

			// A chunk at the wrong offset is refused and changes nothing.
			for _, off := range []int64{0, 3, 1000} {
				st, err = env.WriteUpload(ctx, "app", up.ID, off, strings.NewReader("oops"))
				wantErr(t, err, ErrRangeInvalid)
				if !errdefs.IsOutOfRange(err) || errdefs.HTTPStatus(err) != 416 {
					t.Errorf("offset %d: class of %v", off, err)
				}
				if st.Offset != int64(len(chunks[0])) {
					t.Errorf("offset %d: status offset = %d, want %d", off, st.Offset, len(chunks[0]))
				}
			}
			if got, err := env.GetUpload(ctx, "app", up.ID); err != nil || got.Offset != int64(len(chunks[0])) {
				t.Fatalf("GetUpload after bad chunks = %+v, %v", got, err)
			}

			st, err = env.WriteUpload(ctx, "app", up.ID, st.Offset, strings.NewReader(chunks[1]))
			if err != nil {
				t.Fatal(err)
			}
			st, err = env.WriteUpload(ctx, "app", up.ID, -1, strings.NewReader(chunks[2]))
			if err != nil || st.Offset != int64(len(whole)) {
				t.Fatalf("appended chunk: %+v, %v", st, err)
			}
			info, err := env.CommitUpload(ctx, "app", up.ID, tt.digest)
			if err != nil {
				t.Fatal(err)
			}
			if info.Digest != tt.digest || info.Size != int64(len(whole)) {
				t.Errorf("CommitUpload = %+v", info)
			}
			ra, err := env.OpenBlob(ctx, "app", tt.digest)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, ra), whole) {
				t.Error("committed bytes differ")
			}
			_, err = env.GetUpload(ctx, "app", up.ID)
			wantErr(t, err, ErrBlobUploadUnknown)
		})
	}
}

func TestCommitUploadWrongDigest(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	data := "upload data"
	up, err := env.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.WriteUpload(ctx, "app", up.ID, 0, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	wrong := digest.FromString("not the data")
	_, err = env.CommitUpload(ctx, "app", up.ID, wrong)
	wantErr(t, err, ErrDigestMismatch)
	if errdefs.HTTPStatus(err) != 400 {
		t.Errorf("status = %d, want 400", errdefs.HTTPStatus(err))
	}
	for _, d := range []digest.Digest{wrong, digest.FromString(data)} {
		if _, err := env.cs.Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("content %s after a mismatch: %v", d, err)
		}
		_, err := env.StatBlob(ctx, "app", d)
		wantErr(t, err, ErrBlobUnknown)
	}
	_, err = env.GetUpload(ctx, "app", up.ID)
	wantErr(t, err, ErrBlobUploadUnknown)
	_, err = env.WriteUpload(ctx, "app", up.ID, -1, strings.NewReader("more"))
	wantErr(t, err, ErrBlobUploadUnknown)
}

func TestUploadSessions(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	up, err := env.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		repo string
		id   string
		want error
	}{
		{name: "other repository", repo: "other", id: up.ID, want: ErrBlobUploadUnknown},
		{name: "unknown id", repo: "app", id: "0123456789abcdef0123456789abcdef", want: ErrBlobUploadUnknown},
		{name: "malformed id", repo: "app", id: "../../etc", want: ErrBlobUploadUnknown},
		{name: "invalid name", repo: "App", id: up.ID, want: ErrNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.GetUpload(ctx, tt.repo, tt.id)
			wantErr(t, err, tt.want)
			_, err = env.WriteUpload(ctx, tt.repo, tt.id, -1, strings.NewReader("x"))
			wantErr(t, err, tt.want)
			_, err = env.CommitUpload(ctx, tt.repo, tt.id, digest.FromString("x"))
			wantErr(t, err, tt.want)
			wantErr(t, env.CancelUpload(ctx, tt.repo, tt.id), tt.want)
		})
	}
	if got, err := env.GetUpload(ctx, "app", up.ID); err != nil || got.Offset != 0 {
		t.Fatalf("the session suffered from the calls above: %+v, %v", got, err)
	}

	t.Run("cancel", func(t *testing.T) {
		if _, err := env.WriteUpload(ctx, "app", up.ID, 0, strings.NewReader("data")); err != nil {
			t.Fatal(err)
		}
		if err := env.CancelUpload(ctx, "app", up.ID); err != nil {
			t.Fatal(err)
		}
		_, err := env.GetUpload(ctx, "app", up.ID)
		wantErr(t, err, ErrBlobUploadUnknown)
		if st, _ := env.cs.ListStatuses(ctx); len(st) != 0 {
			t.Errorf("ingests left after cancel: %+v", st)
		}
	})
}

func TestUploadSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*Registry, func()) {
		cs, err := content.NewStore(filepath.Join(dir, "content"))
		if err != nil {
			t.Fatal(err)
		}
		db, err := meta.Open(filepath.Join(dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		return NewRegistry(cs, db), func() { db.Close() }
	}
	r, closeDB := open()
	up, err := r.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WriteUpload(ctx, "app", up.ID, 0, strings.NewReader("before restart, ")); err != nil {
		t.Fatal(err)
	}
	closeDB()

	r, closeDB = open()
	defer closeDB()
	st, err := r.GetUpload(ctx, "app", up.ID)
	if err != nil || st.Offset != int64(len("before restart, ")) {
		t.Fatalf("GetUpload after restart = %+v, %v", st, err)
	}
	if _, err := r.WriteUpload(ctx, "app", up.ID, st.Offset, strings.NewReader("after")); err != nil {
		t.Fatal(err)
	}
	want := digest.FromString("before restart, after")
	if _, err := r.CommitUpload(ctx, "app", up.ID, want); err != nil {
		t.Fatal(err)
	}
	if _, err := r.StatBlob(ctx, "app", want); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWriteOnOneUpload(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	up, err := env.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := env.WriteUpload(ctx, "app", up.ID, 0, pr)
		done <- err
	}()
	// The write returns once the first call's copy has read it, so the
	// first call holds the upload from here on.
	if _, err := pw.Write([]byte("first ")); err != nil {
		t.Fatal(err)
	}
	_, err = env.WriteUpload(ctx, "app", up.ID, -1, strings.NewReader("second"))
	if !errdefs.IsUnavailable(err) {
		t.Errorf("second concurrent write: %v, want ErrUnavailable", err)
	}
	_, err = env.CommitUpload(ctx, "app", up.ID, digest.FromString("first "))
	if !errdefs.IsUnavailable(err) {
		t.Errorf("commit during a write: %v, want ErrUnavailable", err)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := env.CommitUpload(ctx, "app", up.ID, digest.FromString("first ")); err != nil {
		t.Fatal(err)
	}
}

func TestCancelDuringWrite(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	up, err := env.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := env.WriteUpload(ctx, "app", up.ID, 0, pr)
		done <- err
	}()
	if _, err := pw.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := env.CancelUpload(ctx, "app", up.ID); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	wantErr(t, <-done, ErrBlobUploadUnknown)
	if st, _ := env.cs.ListStatuses(ctx); len(st) != 0 {
		t.Errorf("the cancelled upload left ingests: %+v", st)
	}
}

func TestMountBlob(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	d := env.pushBlob(t, "source", []byte("mountable")).Digest

	tests := []struct {
		name string
		repo string
		from string
		dgst digest.Digest
		want error
	}{
		{name: "from a repository", repo: "target", from: "source", dgst: d},
		{name: "anonymous", repo: "anon", dgst: d},
		{name: "from a repository without it", repo: "target2", from: "empty", dgst: d, want: ErrBlobUnknown},
		{name: "unknown blob", repo: "target3", from: "source", dgst: digest.FromString("nowhere"), want: ErrBlobUnknown},
		{name: "unknown blob anonymous", repo: "target3", dgst: digest.FromString("nowhere"), want: ErrBlobUnknown},
		{name: "invalid from", repo: "target3", from: "Source", dgst: d, want: ErrNameInvalid},
		{name: "invalid digest", repo: "target3", from: "source", dgst: "sha256:x", want: ErrDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := env.MountBlob(ctx, tt.repo, tt.from, tt.dgst)
			if tt.want != nil {
				wantErr(t, err, tt.want)
				if _, err := env.StatBlob(ctx, tt.repo, tt.dgst); !errors.Is(err, ErrBlobUnknown) && !errors.Is(err, ErrDigestInvalid) {
					t.Errorf("a failed mount linked the blob: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.Digest != tt.dgst || info.Size != int64(len("mountable")) {
				t.Errorf("info = %+v", info)
			}
			if _, err := env.StatBlob(ctx, tt.repo, tt.dgst); err != nil {
				t.Errorf("not linked after mount: %v", err)
			}
		})
	}
}

func TestDeleteBlob(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	d := env.pushBlob(t, "a", []byte("shared blob")).Digest
	if _, err := env.MountBlob(ctx, "b", "a", d); err != nil {
		t.Fatal(err)
	}

	if err := env.DeleteBlob(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	_, err := env.StatBlob(ctx, "a", d)
	wantErr(t, err, ErrBlobUnknown)
	if _, err := env.StatBlob(ctx, "b", d); err != nil {
		t.Fatalf("b lost the blob: %v", err)
	}
	if _, err := env.cs.Info(ctx, d); err != nil {
		t.Fatalf("content deleted while b links it: %v", err)
	}

	if err := env.DeleteBlob(ctx, "b", d); err != nil {
		t.Fatal(err)
	}
	if _, err := env.cs.Info(ctx, d); !errdefs.IsNotFound(err) {
		t.Errorf("content kept after the last link went: %v", err)
	}
	wantErr(t, env.DeleteBlob(ctx, "b", d), ErrBlobUnknown)
	wantErr(t, env.DeleteBlob(ctx, "b", "sha256:x"), ErrDigestInvalid)

	// The blob can be pushed again after its content was deleted.
	if got := env.pushBlob(t, "b", []byte("shared blob")).Digest; got != d {
		t.Fatalf("digest = %s", got)
	}
	if _, err := env.StatBlob(ctx, "b", d); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteBlobKeepsManifestContent(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "app", "layer")
	env.putImage(t, "app", "v1", img)
	// The manifest's own blob link goes, its record stays, and so does its
	// content.
	if err := env.DeleteBlob(ctx, "app", img.digest); err != nil {
		t.Fatal(err)
	}
	if _, ra, err := env.GetManifest(ctx, "app", "v1"); err != nil {
		t.Fatalf("manifest lost with its blob link: %v", err)
	} else {
		ra.Close()
	}
}

func TestDeleteManifest(t *testing.T) {
	ctx := context.Background()

	t.Run("by tag", func(t *testing.T) {
		env := newTestEnv(t)
		img := env.newImage(t, "app", "layer")
		env.putImage(t, "app", "v1", img)
		env.putImage(t, "app", "latest", img)
		if err := env.DeleteManifest(ctx, "app", "v1"); err != nil {
			t.Fatal(err)
		}
		_, err := env.ResolveManifest(ctx, "app", "v1")
		wantErr(t, err, ErrManifestUnknown)
		for _, ref := range []string{"latest", img.digest.String()} {
			if _, err := env.ResolveManifest(ctx, "app", ref); err != nil {
				t.Errorf("%s gone with the tag: %v", ref, err)
			}
		}
		wantErr(t, env.DeleteManifest(ctx, "app", "v1"), ErrManifestUnknown)
	})

	t.Run("by digest", func(t *testing.T) {
		env := newTestEnv(t)
		subject := env.newImage(t, "app", "subject layer")
		env.putImage(t, "app", "subject", subject)
		img := env.newImage(t, "app", "layer")
		img.manifest.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject.digest, Size: int64(len(subject.body))}
		img.marshal(t)
		env.putImage(t, "app", "v1", img)
		env.putImage(t, "app", "latest", img)

		if err := env.DeleteManifest(ctx, "app", img.digest.String()); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{"v1", "latest", img.digest.String()} {
			_, err := env.ResolveManifest(ctx, "app", ref)
			wantErr(t, err, ErrManifestUnknown)
		}
		if refs, err := env.Referrers(ctx, "app", subject.digest, ""); err != nil || len(refs) != 0 {
			t.Errorf("referrers after delete = %v, %v", refs, err)
		}
		if _, err := env.cs.Info(ctx, img.digest); !errdefs.IsNotFound(err) {
			t.Errorf("manifest content kept: %v", err)
		}
		if tags, _ := env.Tags(ctx, "app", -1, ""); !reflect.DeepEqual(tags, []string{"subject"}) {
			t.Errorf("tags = %v", tags)
		}
		wantErr(t, env.DeleteManifest(ctx, "app", img.digest.String()), ErrManifestUnknown)
	})

	t.Run("content shared with another repository", func(t *testing.T) {
		env := newTestEnv(t)
		img := env.newImage(t, "a", "layer")
		env.newImage(t, "b", "layer")
		env.putImage(t, "a", "v1", img)
		env.putImage(t, "b", "v1", img)
		if err := env.DeleteManifest(ctx, "a", img.digest.String()); err != nil {
			t.Fatal(err)
		}
		if _, ra, err := env.GetManifest(ctx, "b", "v1"); err != nil {
			t.Fatalf("b lost its manifest: %v", err)
		} else {
			ra.Close()
		}
	})

	t.Run("unknown repository", func(t *testing.T) {
		env := newTestEnv(t)
		wantErr(t, env.DeleteManifest(ctx, "nothing", "v1"), ErrNameUnknown)
		wantErr(t, env.DeleteManifest(ctx, "nothing", digest.FromString("x").String()), ErrNameUnknown)
	})
}

func TestReferrers(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	subject := env.newImage(t, "app", "subject")
	env.putImage(t, "app", "v1", subject)
	subjectDesc := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject.digest, Size: int64(len(subject.body))}
	empty := env.pushBlob(t, "app", []byte("{}"))
	empty.MediaType = ocispec.MediaTypeEmptyJSON

	// An artifact with an artifactType and annotations.
	sig := &image{manifest: ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.signature", Config: empty,
		Layers:      []ocispec.Descriptor{env.pushBlob(t, "app", []byte("signature"))},
		Subject:     subjectDesc,
		Annotations: map[string]string{"org.example.signer": "CN=Microsoft"},
	}}
	sig.marshal(t)
	sigRec := env.putImage(t, "app", sig.digest.String(), sig)
	if sigRec.Subject != subject.digest {
		t.Errorf("record Subject = %q, want %s", sigRec.Subject, subject.digest)
	}

	// An artifact without artifactType: its config media type stands in.
	sbomConfig := env.pushBlob(t, "app", []byte(`{"sbom":true}`))
	sbomConfig.MediaType = "application/vnd.example.sbom.config"
	sbom := &image{manifest: ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: sbomConfig, Layers: []ocispec.Descriptor{}, Subject: subjectDesc,
	}}
	sbom.marshal(t)
	env.putImage(t, "app", "sbom", sbom)

	// An index referrer.
	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		ArtifactType: "application/vnd.example.signature", Manifests: []ocispec.Descriptor{}, Subject: subjectDesc,
	}
	idxBody, _ := json.Marshal(idx)
	idxRec, err := env.PutManifest(ctx, "app", "index", ocispec.MediaTypeImageIndex, idxBody)
	if err != nil {
		t.Fatal(err)
	}

	// A referrer whose subject does not exist.
	ghost := digest.FromString("missing subject")
	orphan := &image{manifest: sig.manifest}
	orphan.manifest.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: ghost, Size: 123}
	orphan.marshal(t)
	if rec := env.putImage(t, "app", "orphan", orphan); rec.Subject != ghost {
		t.Errorf("orphan Subject = %q", rec.Subject)
	}

	sigDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: sig.digest, Size: int64(len(sig.body)),
		ArtifactType: "application/vnd.example.signature", Annotations: sig.manifest.Annotations}
	sbomDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: sbom.digest, Size: int64(len(sbom.body)),
		ArtifactType: "application/vnd.example.sbom.config"}
	idxDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: idxRec.Digest, Size: idxRec.Size,
		ArtifactType: "application/vnd.example.signature"}
	orphanDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: orphan.digest, Size: int64(len(orphan.body)),
		ArtifactType: "application/vnd.example.signature", Annotations: sig.manifest.Annotations}

	tests := []struct {
		name         string
		repo         string
		subject      digest.Digest
		artifactType string
		want         []ocispec.Descriptor
	}{
		{name: "all", repo: "app", subject: subject.digest, want: []ocispec.Descriptor{sigDesc, sbomDesc, idxDesc}},
		{name: "signatures", repo: "app", subject: subject.digest, artifactType: "application/vnd.example.signature", want: []ocispec.Descriptor{sigDesc, idxDesc}},
		{name: "by config media type", repo: "app", subject: subject.digest, artifactType: "application/vnd.example.sbom.config", want: []ocispec.Descriptor{sbomDesc}},
		{name: "no match", repo: "app", subject: subject.digest, artifactType: "application/none", want: []ocispec.Descriptor{}},
		{name: "missing subject", repo: "app", subject: ghost, want: []ocispec.Descriptor{orphanDesc}},
		{name: "unknown subject", repo: "app", subject: digest.FromString("nobody"), want: []ocispec.Descriptor{}},
		{name: "unknown repository", repo: "none", subject: subject.digest, want: []ocispec.Descriptor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := env.Referrers(ctx, tt.repo, tt.subject, tt.artifactType)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("nil list, want an empty one")
			}
			if !sameDescriptors(got, tt.want) {
				t.Errorf("referrers:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// sameDescriptors compares descriptor lists in any order.
func sameDescriptors(a, b []ocispec.Descriptor) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if reflect.DeepEqual(x, y) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestIndexOfManifests(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	var descs []ocispec.Descriptor
	var sizes int64
	for _, l := range []string{"amd64", "arm64"} {
		img := env.newImage(t, "multi", l)
		rec := env.putImage(t, "multi", img.digest.String(), img)
		descs = append(descs, rec.Descriptor())
		sizes += rec.Size
	}
	body, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs})
	rec, err := env.PutManifest(ctx, "multi", "latest", ocispec.MediaTypeImageIndex, body)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ContentSize != int64(len(body))+sizes {
		t.Errorf("ContentSize = %d, want %d", rec.ContentSize, int64(len(body))+sizes)
	}
	// The same index in a repository without the manifests is refused.
	_, err = env.PutManifest(ctx, "other", "latest", ocispec.MediaTypeImageIndex, body)
	wantErr(t, err, ErrManifestBlobUnknown)
}

func TestTagsAndRepositoriesPagination(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "b", "layer")
	for _, repo := range []string{"a", "c", "d/e"} {
		env.newImage(t, repo, "layer")
	}
	tags := []string{"1.0", "1.1", "2.0", "latest"}
	for _, repo := range []string{"b", "a", "c", "d/e"} {
		for _, tag := range tags {
			env.putImage(t, repo, tag, img)
		}
	}
	// A repository with blobs only is not listed.
	env.pushBlob(t, "blobs-only", []byte("x"))

	tests := []struct {
		name     string
		n        int
		last     string
		wantTags []string
		wantRepo []string
	}{
		{name: "all", n: -1, wantTags: tags, wantRepo: []string{"a", "b", "c", "d/e"}},
		{name: "first two", n: 2, wantTags: tags[:2], wantRepo: []string{"a", "b"}},
		{name: "two after last", n: 2, last: "1.0", wantTags: []string{"1.1", "2.0"}},
		{name: "rest after last", n: -1, last: "1.1", wantTags: []string{"2.0", "latest"}},
		{name: "last between keys", n: -1, last: "1.5", wantTags: []string{"2.0", "latest"}},
		{name: "repos after last", n: 10, last: "b", wantRepo: []string{"c", "d/e"}},
		{name: "after the end", n: 5, last: "zzz", wantTags: []string{}, wantRepo: []string{}},
		{name: "n zero", n: 0, wantTags: []string{}, wantRepo: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantTags != nil {
				got, err := env.Tags(ctx, "b", tt.n, tt.last)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.wantTags) {
					t.Errorf("Tags(n=%d, last=%q) = %q, want %q", tt.n, tt.last, got, tt.wantTags)
				}
			}
			if tt.wantRepo != nil {
				got, err := env.Repositories(ctx, tt.n, tt.last)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.wantRepo) {
					t.Errorf("Repositories(n=%d, last=%q) = %q, want %q", tt.n, tt.last, got, tt.wantRepo)
				}
			}
		})
	}
	_, err := env.Tags(ctx, "unknown", -1, "")
	wantErr(t, err, ErrNameUnknown)
	_, err = env.Tags(ctx, "Bad", -1, "")
	wantErr(t, err, ErrNameInvalid)
}

func TestTaggedManifests(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	nano := env.newImage(t, "nanoserver", "nano")
	core := env.newImage(t, "windowsservercore", "core")
	nanoRec := env.putImage(t, "nanoserver", "10.0.10586.0", nano)
	env.putImage(t, "nanoserver", "10.0.14393.0", nano)
	coreRec := env.putImage(t, "windowsservercore", "10.0.14393.0", core)
	// An untagged manifest is not listed.
	untagged := env.newImage(t, "nanoserver", "untagged")
	env.putImage(t, "nanoserver", untagged.digest.String(), untagged)

	got, err := env.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []TaggedManifest{
		{Repository: "nanoserver", Tag: "10.0.10586.0", Manifest: nanoRec},
		{Repository: "nanoserver", Tag: "10.0.14393.0", Manifest: nanoRec},
		{Repository: "windowsservercore", Tag: "10.0.14393.0", Manifest: coreRec},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TaggedManifests:\n got %+v\nwant %+v", got, want)
	}
}

func TestIdempotentPut(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "nanoserver", "layer")
	first := env.putImage(t, "nanoserver", "10.0.14393.0", img)
	before := env.snapshot(t)

	for _, ref := range []string{"10.0.14393.0", img.digest.String()} {
		again := env.putImage(t, "nanoserver", ref, img)
		if !reflect.DeepEqual(again, first) {
			t.Errorf("re-put by %s returned %+v, want the first record %+v", ref, again, first)
		}
	}
	if after := env.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("re-put changed the catalog:\n%+v\n%+v", before, after)
	}
	// A new tag for the same bytes keeps the record as it was.
	if rec := env.putImage(t, "nanoserver", "latest", img); !reflect.DeepEqual(rec, first) {
		t.Errorf("new tag returned %+v, want %+v", rec, first)
	}
	rec, err := env.ResolveManifest(ctx, "nanoserver", "latest")
	if err != nil || !rec.Pushed.Equal(first.Pushed) {
		t.Errorf("latest = %+v, %v", rec, err)
	}
}

func TestInvalidNames(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	d := digest.FromString("x")
	calls := []struct {
		name string
		call func(repo string) error
	}{
		{name: "StatBlob", call: func(repo string) error { _, err := env.StatBlob(ctx, repo, d); return err }},
		{name: "OpenBlob", call: func(repo string) error { _, err := env.OpenBlob(ctx, repo, d); return err }},
		{name: "DeleteBlob", call: func(repo string) error { return env.DeleteBlob(ctx, repo, d) }},
		{name: "MountBlob", call: func(repo string) error { _, err := env.MountBlob(ctx, repo, "", d); return err }},
		{name: "PutBlob", call: func(repo string) error {
			_, err := env.PutBlob(ctx, repo, "", 1, strings.NewReader("x"))
			return err
		}},
		{name: "StartUpload", call: func(repo string) error { _, err := env.StartUpload(ctx, repo); return err }},
		{name: "PutManifest", call: func(repo string) error {
			_, err := env.PutManifest(ctx, repo, "v1", ocispec.MediaTypeImageManifest, []byte("{}"))
			return err
		}},
		{name: "ResolveManifest", call: func(repo string) error { _, err := env.ResolveManifest(ctx, repo, "v1"); return err }},
		{name: "DeleteManifest", call: func(repo string) error { return env.DeleteManifest(ctx, repo, "v1") }},
		{name: "Tags", call: func(repo string) error { _, err := env.Tags(ctx, repo, -1, ""); return err }},
		{name: "Referrers", call: func(repo string) error { _, err := env.Referrers(ctx, repo, d, ""); return err }},
	}
	for _, name := range []string{"", "UPPER", "a//b", "-a", strings.Repeat("a", 256)} {
		for _, c := range calls {
			t.Run(fmt.Sprintf("%s %.10q", c.name, name), func(t *testing.T) {
				wantErr(t, c.call(name), ErrNameInvalid)
			})
		}
	}
	if repos, _ := env.Repositories(ctx, -1, ""); len(repos) != 0 {
		t.Errorf("invalid calls created repositories: %v", repos)
	}
}

// TestConcurrentPutAndDelete races puts and deletes of the same manifests;
// the invariants checked at cleanup must hold whatever the interleaving.
func TestConcurrentPutAndDelete(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	var imgs []*image
	for i := range 3 {
		imgs = append(imgs, env.newImage(t, "race", fmt.Sprintf("layer %d", i)))
	}
	const workers, rounds = 4, 25
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var err error
			for i := range rounds {
				img := imgs[(w+i)%len(imgs)]
				switch (w + i) % 3 {
				case 0, 1:
					tag := fmt.Sprintf("t%d", i%4)
					if _, e := env.PutManifest(ctx, "race", tag, img.manifest.MediaType, img.body); e != nil {
						err = fmt.Errorf("put: %w", e)
					}
				case 2:
					e := env.DeleteManifest(ctx, "race", img.digest.String())
					if e != nil && !errors.Is(e, ErrManifestUnknown) && !errors.Is(e, ErrNameUnknown) {
						err = fmt.Errorf("delete: %w", e)
					}
				}
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// Whatever is still recorded can be read.
	tagged, err := env.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range tagged {
		_, ra, err := env.GetManifest(ctx, tm.Repository, tm.Tag)
		if err != nil {
			t.Errorf("%s:%s: %v", tm.Repository, tm.Tag, err)
			continue
		}
		ra.Close()
	}
}

// TestConcurrentBlobPushAndDelete races pushes of one blob into one
// repository against deletes of it from another.
func TestConcurrentBlobPushAndDelete(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	data := []byte("contended blob")
	d := digest.FromBytes(data)
	const rounds = 40
	done := make(chan error, 2)
	go func() {
		var err error
		for range rounds {
			if _, e := env.PutBlob(ctx, "a", d, int64(len(data)), bytes.NewReader(data)); e != nil {
				err = e
				break
			}
			if _, e := env.PutBlob(ctx, "b", "", -1, bytes.NewReader(data)); e != nil {
				err = e
				break
			}
		}
		done <- err
	}()
	go func() {
		var err error
		for range rounds {
			for _, repo := range []string{"a", "b"} {
				if e := env.DeleteBlob(ctx, repo, d); e != nil && !errors.Is(e, ErrBlobUnknown) {
					err = e
				}
			}
		}
		done <- err
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestPurgeUploads(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	var ids []string
	for range 2 {
		up, err := env.StartUpload(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.WriteUpload(ctx, "app", up.ID, 0, strings.NewReader("partial")); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, up.ID)
	}
	// Ingests left by a crash: one of the registry's, one of someone else.
	for _, ref := range []string{refPrefixPut + newID(), "other-writer"} {
		w, err := env.cs.Writer(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("left over"))
		w.Close()
	}

	n, err := env.PurgeUploads(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("PurgeUploads(1h) = %d, %v; want nothing purged", n, err)
	}
	for _, id := range ids {
		if _, err := env.GetUpload(ctx, "app", id); err != nil {
			t.Fatalf("fresh upload purged: %v", err)
		}
	}

	// A cutoff in the future makes everything stale.
	n, err = env.PurgeUploads(ctx, -time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("PurgeUploads(-1h) = %d, %v; want 2 sessions and 1 ingest", n, err)
	}
	for _, id := range ids {
		_, err := env.GetUpload(ctx, "app", id)
		wantErr(t, err, ErrBlobUploadUnknown)
	}
	st, err := env.cs.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Ref != "other-writer" {
		t.Fatalf("ingests left = %+v, want only other-writer", st)
	}
	if err := env.cs.Abort(ctx, "other-writer"); err != nil {
		t.Fatal(err)
	}
}
