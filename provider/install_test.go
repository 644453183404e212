package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

var downloadedInRE = regexp.MustCompile(`^Downloaded in 0 hours, 0 minutes, \d+ seconds?\.$`)

// manifest reads the seeded manifest of repo:version from the catalog.
func (c *catalogEnv) manifest(ref string) ocispec.Manifest {
	c.t.Helper()
	repo, version, _ := strings.Cut(ref, ":")
	_, ra, err := c.reg.GetManifest(context.Background(), repo, version)
	if err != nil {
		c.t.Fatal(err)
	}
	defer ra.Close()
	b, err := io.ReadAll(content.NewSectionReader(ra))
	if err != nil {
		c.t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

// blobsOf lists the config and layer digests of a seeded image.
func (c *catalogEnv) blobsOf(ref string) []digest.Digest {
	m := c.manifest(ref)
	out := []digest.Digest{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func nano10586() api.InstallRequest {
	return api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}
}

func TestInstallNanoServerThenGet(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	item := e.cat.item("nanoserver:10.0.10586.0")

	jb, err := e.p.Install(ctx, nano10586())
	if err != nil {
		t.Fatal(err)
	}
	if jb.State != api.JobQueued && jb.State != api.JobRunning {
		t.Errorf("new job state %q, want queued or running", jb.State)
	}
	if jb.Kind != JobKindInstall || !slices.Equal(jb.Images, []string{"NanoServer 10.0.10586.0"}) {
		t.Errorf("job kind %q images %q", jb.Kind, jb.Images)
	}
	final, events := watchAll(t, e.p, jb.ID)
	if final.State != api.JobSucceeded {
		t.Fatalf("job ended %s: %+v", final.State, final.Error)
	}
	if !downloadedInRE.MatchString(final.Message) {
		t.Errorf("message %q, want the Downloaded-in sentence", final.Message)
	}
	if first := events[0]; first.Type != api.EventState || first.Job == nil || first.Job.ID != jb.ID {
		t.Errorf("first event %+v, want a state event with the job", first)
	}
	sawProgress := false
	for _, ev := range events {
		if ev.Type == api.EventProgress && ev.Blob != nil && ev.Blob.Done > 0 {
			sawProgress = true
		}
	}
	if !sawProgress {
		t.Error("no progress event with bytes done")
	}
	for _, b := range final.Blobs {
		if b.Done != b.Total || b.State != blobDone {
			t.Errorf("blob %s: %d of %d, state %s", b.Digest, b.Done, b.Total, b.State)
		}
	}

	imgs, err := e.p.Images(ctx, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 {
		t.Fatalf("Images: %d images, want 1", len(imgs))
	}
	img := imgs[0]
	want := api.Image{
		Name: "NanoServer", Repository: "nanoserver", Publisher: "CN=Microsoft", Version: "10.0.10586.0",
		IsOSImage: true, Digest: item.Digest.String(), ID: item.Digest.Encoded(), Source: "catalog",
	}
	if img.Name != want.Name || img.Repository != want.Repository || img.Publisher != want.Publisher ||
		img.Version != want.Version || img.IsOSImage != want.IsOSImage || img.Digest != want.Digest ||
		img.ID != want.ID || img.Source != want.Source || img.ParentImage != nil {
		t.Errorf("image %+v, want %+v", img, want)
	}
	if img.Size != item.Size {
		t.Errorf("size %d, want the catalog's content size %d", img.Size, item.Size)
	}
	if img.Installed.IsZero() || img.Created.IsZero() {
		t.Errorf("installed %v created %v", img.Installed, img.Created)
	}
	if !strings.HasPrefix(img.Description, "Container OS Image") {
		t.Errorf("description %q", img.Description)
	}
	if !slices.Equal(img.Refs, []string{"nanoserver:10.0.10586.0", "nanoserver:latest"}) {
		t.Errorf("refs %q", img.Refs)
	}
	if final.Result == nil || final.Result.Digest != img.Digest {
		t.Errorf("result %+v, want the installed image", final.Result)
	}

	// Every blob of the image is committed; the leases are gone.
	rec, ok := e.record(item.Digest)
	if !ok {
		t.Fatal("no record")
	}
	for _, d := range rec.blobs() {
		if ok, err := e.p.verifyBlob(ctx, d); err != nil || !ok {
			t.Errorf("blob %s: verified %v, %v", d.Digest, ok, err)
		}
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}

	stored, err := e.p.Job(ctx, jb.ID)
	if err != nil || stored.State != api.JobSucceeded || stored.Message != final.Message {
		t.Errorf("Job(%s) = %+v, %v", jb.ID, stored, err)
	}
	// A finished job's stream is its state and its result.
	_, again := watchAll(t, e.p, jb.ID)
	if len(again) != 2 || again[0].Type != api.EventState || again[1].Type != api.EventResult {
		t.Errorf("events of a finished job: %+v", again)
	}
}

func TestInstallPullsParentFirst(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	wsc := e.cat.item("windowsservercore:10.0.14393.0")
	iis := e.cat.item("microsoft/iis:1.0.0.0")

	jb, err := e.p.Install(ctx, api.InstallRequest{Name: "microsoft/iis"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"WindowsServerCore 10.0.14393.0", "microsoft/iis 1.0.0.0"}; !slices.Equal(jb.Images, want) {
		t.Errorf("job images %q, want %q", jb.Images, want)
	}
	final, events := watchAll(t, e.p, jb.ID)
	if final.State != api.JobSucceeded {
		t.Fatalf("job ended %s: %+v", final.State, final.Error)
	}
	var logs []string
	for _, ev := range events {
		if ev.Type == api.EventLog {
			logs = append(logs, ev.Message)
		}
	}
	// The watch starts after Install returns, so it may miss the job's
	// first line; what it sees must still be in order: the parent's
	// install line first, then the parent installed before the child.
	if i := slices.Index(logs, "Installing parent image WindowsServerCore 10.0.14393.0"); i > 0 {
		t.Errorf("log events %q: the parent's line is not first", logs)
	}
	parent, child := slices.Index(logs, "Installed WindowsServerCore 10.0.14393.0"), slices.Index(logs, "Installed microsoft/iis 1.0.0.0")
	if parent < 0 || child < 0 || parent > child {
		t.Errorf("log events %q: want the parent installed before the child", logs)
	}
	if final.Result == nil || final.Result.Digest != iis.Digest.String() {
		t.Errorf("result %+v, want microsoft/iis", final.Result)
	}

	imgs, err := e.p.Images(ctx, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name+" "+img.Version)
	}
	if want := []string{"microsoft/iis 1.0.0.0", "WindowsServerCore 10.0.14393.0"}; !slices.Equal(names, want) {
		t.Fatalf("images %q, want %q", names, want)
	}
	got := imgs[0]
	if got.IsOSImage || got.ParentImage == nil {
		t.Fatalf("iis: IsOSImage %v parent %+v", got.IsOSImage, got.ParentImage)
	}
	wantParent := api.ParentRef{Name: "WindowsServerCore", Version: "10.0.14393.0", Digest: wsc.Digest.String(), Publisher: "CN=Microsoft"}
	if *got.ParentImage != wantParent {
		t.Errorf("parent %+v, want %+v", *got.ParentImage, wantParent)
	}
	if !imgs[1].IsOSImage {
		t.Error("WindowsServerCore is not an OS image")
	}

	// ChildOf by name, name:version, digest and id prefix.
	for _, ref := range []string{"WindowsServerCore", "windowsservercore:10.0.14393.0", wsc.Digest.String(), wsc.Digest.Encoded()[:8]} {
		children, err := e.p.Images(ctx, GetOptions{ChildOf: ref})
		if err != nil {
			t.Fatalf("ChildOf %q: %v", ref, err)
		}
		if len(children) != 1 || children[0].Digest != iis.Digest.String() {
			t.Errorf("ChildOf %q: %+v, want microsoft/iis", ref, children)
		}
	}
	_, err = e.p.Images(ctx, GetOptions{ChildOf: "NanoServer"})
	mustClass(t, err, errdefs.ErrNotFound)
}

func TestInstallAlreadyInstalledIsANoOp(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	first := e.install(nano10586())
	if first.State != api.JobSucceeded {
		t.Fatalf("first install: %s %+v", first.State, first.Error)
	}
	layers := e.cat.blobsOf("nanoserver:10.0.10586.0")
	gets, _, _ := e.cat.tap.counts(layers[1])

	again, err := e.p.Install(ctx, nano10586())
	if err != nil {
		t.Fatal(err)
	}
	if again.State != api.JobSucceeded || again.ID == first.ID {
		t.Fatalf("second install: job %s state %s, want a new job that has succeeded", again.ID, again.State)
	}
	if again.Message != "NanoServer 10.0.10586.0 is already installed." {
		t.Errorf("message %q", again.Message)
	}
	if again.Result == nil || again.Result.Digest != first.Result.Digest {
		t.Errorf("result %+v", again.Result)
	}
	if stored, err := e.p.Job(ctx, again.ID); err != nil || stored.State != api.JobSucceeded {
		t.Errorf("stored no-op job: %+v, %v", stored, err)
	}
	if g, _, _ := e.cat.tap.counts(layers[1]); g != gets {
		t.Errorf("layer GETs went from %d to %d", gets, g)
	}
	jobs, err := e.p.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].ID != again.ID {
		t.Errorf("Jobs: %d jobs, newest %v, err %v", len(jobs), jobs, err)
	}
}

func TestInstallForceRepairsBlobs(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	if jb := e.install(nano10586()); jb.State != api.JobSucceeded {
		t.Fatalf("install: %s %+v", jb.State, jb.Error)
	}
	item := e.cat.item("nanoserver:10.0.10586.0")
	rec, _ := e.record(item.Digest)
	config, layer := rec.Config.Digest, rec.Layers[0].Digest

	// Corrupt the layer in place and delete the config.
	layerPath := filepath.Join(e.root, contentDir, "blobs", "sha256", layer.Encoded())
	b, err := os.ReadFile(layerPath)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(layerPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.p.cs.Delete(ctx, config); err != nil {
		t.Fatal(err)
	}
	e.cat.tap.reset()

	req := nano10586()
	req.Force = true
	jb := e.install(req)
	if jb.State != api.JobSucceeded || !downloadedInRE.MatchString(jb.Message) {
		t.Fatalf("forced install: %s %q %+v", jb.State, jb.Message, jb.Error)
	}
	for _, d := range rec.blobs() {
		if ok, err := e.p.verifyBlob(ctx, d); err != nil || !ok {
			t.Errorf("blob %s after Force: verified %v, %v", d.Digest, ok, err)
		}
	}
	for _, d := range []digest.Digest{config, layer} {
		if g, _, _ := e.cat.tap.counts(d); g != 1 {
			t.Errorf("blob %s downloaded %d times, want 1", d, g)
		}
	}
}

func TestInstallNoParentsNamesTheParent(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	_, err := e.p.Install(ctx, api.InstallRequest{Name: "microsoft/iis", NoParents: true})
	mustClass(t, err, errdefs.ErrFailedPrecondition)
	if !strings.Contains(err.Error(), "parent image WindowsServerCore 10.0.14393.0 is not installed") {
		t.Errorf("error %q does not name the parent", err)
	}
	jobs, err := e.p.Jobs(ctx)
	if err != nil || len(jobs) != 0 {
		t.Errorf("jobs after a refused install: %+v, %v", jobs, err)
	}
	// With the parent installed, NoParents installs the child alone.
	if jb := e.install(api.InstallRequest{Name: "WindowsServerCore"}); jb.State != api.JobSucceeded {
		t.Fatalf("parent: %s %+v", jb.State, jb.Error)
	}
	jb := e.install(api.InstallRequest{Name: "microsoft/iis", NoParents: true})
	if jb.State != api.JobSucceeded || !slices.Equal(jb.Images, []string{"microsoft/iis 1.0.0.0"}) {
		t.Errorf("child: %s images %q %+v", jb.State, jb.Images, jb.Error)
	}
}

func TestInstallRefusesBadInput(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	tests := []struct {
		name string
		req  api.InstallRequest
		want error
		text string
	}{
		{name: "no name", req: api.InstallRequest{}, want: errdefs.ErrInvalidArgument},
		{name: "wildcard", req: api.InstallRequest{Name: "Nano*"}, want: errdefs.ErrInvalidArgument},
		{name: "bad version", req: api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "x.y"}},
			want: errdefs.ErrInvalidArgument, text: "The specified version 'x.y' is invalid."},
		{name: "required and min", req: api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "1.0", MinimumVersion: "1.0"}},
			want: errdefs.ErrInvalidArgument},
		{name: "unknown name", req: api.InstallRequest{Name: "NoSuchImage"}, want: errdefs.ErrNotFound,
			text: "No match was found for the specified search criteria and package name 'NoSuchImage'."},
		{name: "unknown version", req: api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "9.9"}},
			want: errdefs.ErrNotFound, text: "RequiredVersion '9.9' was not found."},
		{name: "unknown source", req: api.InstallRequest{Name: "NanoServer", Source: "elsewhere"}, want: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.Install(context.Background(), tt.req)
			mustClass(t, err, tt.want)
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q, want it to contain %q", err, tt.text)
			}
		})
	}
	if jobs, _ := e.p.Jobs(context.Background()); len(jobs) != 0 {
		t.Errorf("bad input left %d jobs", len(jobs))
	}
}

func TestInstallFailsOnCorruptLayer(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	blobs := e.cat.blobsOf("nanoserver:10.0.10586.0")
	layer := blobs[1]
	e.cat.tap.mu.Lock()
	e.cat.tap.corrupt = layer.String()
	e.cat.tap.mu.Unlock()

	jb := e.install(nano10586())
	if jb.State != api.JobFailed || jb.Error == nil {
		t.Fatalf("job ended %s %+v, want failed", jb.State, jb.Error)
	}
	if jb.Error.Code != "FailedPrecondition" {
		t.Errorf("error code %q", jb.Error.Code)
	}
	for _, want := range []string{layer.String(), "NanoServer 10.0.10586.0", "layer"} {
		if !strings.Contains(jb.Error.Message, want) {
			t.Errorf("error %q does not name %q", jb.Error.Message, want)
		}
	}
	if g, _, _ := e.cat.tap.counts(layer); g != 1 {
		t.Errorf("corrupt layer fetched %d times, want 1 (no retry)", g)
	}
	if _, ok := e.record(e.cat.item("nanoserver:10.0.10586.0").Digest); ok {
		t.Error("an image record was written")
	}
	if _, err := e.p.cs.Info(context.Background(), layer); !errdefs.IsNotFound(err) {
		t.Errorf("corrupt layer committed: %v", err)
	}
	if imgs, _ := e.p.Images(context.Background(), GetOptions{}); len(imgs) != 0 {
		t.Errorf("images %+v", imgs)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}
}

func TestInstallResumesAfterCutConnections(t *testing.T) {
	e := newEnv(t, 1<<20)
	layer := e.cat.blobsOf("nanoserver:10.0.10586.0")[1]
	const cuts = 3
	e.cat.tap.mu.Lock()
	e.cat.tap.cutDigest, e.cat.tap.cutAfter, e.cat.tap.cutsLeft = layer.String(), 100<<10, cuts
	e.cat.tap.mu.Unlock()

	jb := e.install(nano10586())
	if jb.State != api.JobSucceeded {
		t.Fatalf("job ended %s %+v", jb.State, jb.Error)
	}
	gets, ranges, sent := e.cat.tap.counts(layer)
	if gets != cuts+1 || ranges != cuts {
		t.Errorf("layer: %d GETs, %d with Range; want %d and %d", gets, ranges, cuts+1, cuts)
	}
	size := e.cat.manifest("nanoserver:10.0.10586.0").Layers[0].Size
	if sent != size {
		t.Errorf("the catalog sent %d bytes of the layer, want exactly its size %d (no byte twice)", sent, size)
	}
	if ok, err := e.p.verifyBlob(context.Background(), ocispec.Descriptor{Digest: layer, Size: size}); !ok || err != nil {
		t.Errorf("layer verified %v, %v", ok, err)
	}
}

func TestConcurrentInstallsShareDownloads(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	const n = 16
	jobs := make([]api.Job, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs[i], errs[i] = e.p.Install(ctx, nano10586())
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("install %d: %v", i, errs[i])
		}
		if !strings.Contains(jobs[i].Message, "already installed") {
			ids[jobs[i].ID] = true
		}
	}
	if len(ids) != 1 {
		t.Errorf("%d install jobs, want 1", len(ids))
	}
	for id := range ids {
		if jb := e.wait(id); jb.State != api.JobSucceeded {
			t.Fatalf("job %s: %s %+v", id, jb.State, jb.Error)
		}
	}
	for _, d := range e.cat.blobsOf("nanoserver:10.0.10586.0") {
		if g, _, _ := e.cat.tap.counts(d); g != 1 {
			t.Errorf("blob %s: %d GETs, want 1", d, g)
		}
	}

	// Two different images with the same parent share its downloads too.
	e.cat.tap.setThrottle(2 * time.Millisecond)
	var two [2]api.Job
	for i, name := range []string{"microsoft/iis", "microsoft/nginx"} {
		jb, err := e.p.Install(ctx, api.InstallRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		two[i] = jb
	}
	for _, jb := range two {
		if final := e.wait(jb.ID); final.State != api.JobSucceeded {
			t.Fatalf("%v: %s %+v", jb.Images, final.State, final.Error)
		}
	}
	for _, d := range e.cat.blobsOf("windowsservercore:10.0.14393.0") {
		if g, _, _ := e.cat.tap.counts(d); g != 1 {
			t.Errorf("parent blob %s: %d GETs, want 1", d, g)
		}
	}
}

// waitProgress waits until a progress event of blob d reports at least
// atLeast bytes.
func waitProgress(t *testing.T, ch <-chan api.JobEvent, d digest.Digest, atLeast int64) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the job ended before its progress")
			}
			if ev.Type == api.EventResult {
				t.Fatalf("the job ended (%s) before its progress", ev.State)
			}
			if ev.Type == api.EventProgress && ev.Blob != nil && ev.Blob.Digest == d.String() && ev.Blob.Done >= atLeast {
				return
			}
		case <-deadline:
			t.Fatal("no progress")
		}
	}
}

func TestInstallResumesAfterRestart(t *testing.T) {
	e := newEnv(t, 4<<20)
	ctx := context.Background()
	item := e.cat.item("nanoserver:10.0.10586.0")
	layerDesc := e.cat.manifest("nanoserver:10.0.10586.0").Layers[0]
	layer, size := layerDesc.Digest, layerDesc.Size
	e.cat.tap.setThrottle(10 * time.Millisecond)

	jb, err := e.p.Install(ctx, nano10586())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := e.p.Watch(wctx, jb.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, ch, layer, 512<<10)
	cancel()
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}

	// The job is still running in bbolt, its data in the ingest.
	db, err := meta.Open(filepath.Join(e.root, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	var rec jobRecord
	err = db.View(ctx, func(tx *bolt.Tx) error {
		var err error
		rec, _, err = getJob(tx, jb.ID)
		return err
	})
	db.Close()
	if err != nil || rec.State != api.JobRunning {
		t.Fatalf("job after Close: state %q, %v; want running", rec.State, err)
	}
	cs, err := content.NewStore(filepath.Join(e.root, contentDir))
	if err != nil {
		t.Fatal(err)
	}
	st, err := cs.Status(ctx, blobRef(layer))
	if err != nil {
		t.Fatal(err)
	}
	onDisk := st.Offset
	if onDisk < 512<<10 || onDisk >= size {
		t.Fatalf("ingest holds %d of %d bytes", onDisk, size)
	}

	e.cat.tap.setThrottle(0)
	e.cat.tap.waitIdle(t)
	e.cat.tap.reset()
	e.p = e.open()
	final := e.wait(jb.ID)
	if final.State != api.JobSucceeded {
		t.Fatalf("resumed job: %s %+v", final.State, final.Error)
	}
	_, ranges, sent := e.cat.tap.counts(layer)
	if sent != size-onDisk {
		t.Errorf("after the restart the catalog sent %d bytes of the layer; want %d (size %d less %d on disk)",
			sent, size-onDisk, size, onDisk)
	}
	if ranges != 1 {
		t.Errorf("%d Range requests for the layer, want 1", ranges)
	}
	if _, ok := e.record(item.Digest); !ok {
		t.Error("no record after the resumed install")
	}
}

func TestCancelKeepsIngestData(t *testing.T) {
	e := newEnv(t, 4<<20)
	ctx := context.Background()
	layer := e.cat.blobsOf("nanoserver:10.0.10586.0")[1]
	e.cat.tap.setThrottle(10 * time.Millisecond)
	jb, err := e.p.Install(ctx, nano10586())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := e.p.Watch(wctx, jb.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitProgress(t, ch, layer, 256<<10)
	got, err := e.p.Cancel(ctx, jb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.JobCanceled {
		t.Fatalf("state %q after Cancel", got.State)
	}
	// The watcher ends with the result.
	var last api.JobEvent
	for ev := range ch {
		last = ev
	}
	if last.Type != api.EventResult || last.State != api.JobCanceled {
		t.Errorf("last event %+v", last)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}
	st, err := e.p.cs.Status(ctx, blobRef(layer))
	if err != nil || st.Offset < 256<<10 {
		t.Errorf("ingest after Cancel: %+v, %v; want the data kept", st, err)
	}
	if again, err := e.p.Cancel(ctx, jb.ID); err != nil || again.State != api.JobCanceled {
		t.Errorf("second Cancel: %+v, %v", again, err)
	}
	_, err = e.p.Cancel(ctx, "nosuchjob")
	mustClass(t, err, errdefs.ErrNotFound)
	var metrics strings.Builder
	if err := e.p.WriteMetrics(&metrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics.String(), `providerd_installs_total{result="canceled"} 1`) {
		t.Errorf("metrics:\n%s", metrics.String())
	}
}

func TestInstallRefusedWithoutDiskSpace(t *testing.T) {
	var root string
	e := newEnv(t, testBaseLayerSize, func(p *Provider) {
		root = p.root
		p.freeSpace = func(path string) (uint64, error) {
			if path != root {
				return 0, errors.New("unexpected path " + path)
			}
			return 1 << 20, nil
		}
	})
	jb := e.install(nano10586())
	if jb.State != api.JobFailed || jb.Error == nil || jb.Error.Code != api.CodeInsufficientStorage {
		t.Fatalf("job %s %+v, want failed with InsufficientStorage", jb.State, jb.Error)
	}
	re := regexp.MustCompile(`^Not enough space on ` + regexp.QuoteMeta(root) + `: [0-9.]+ MiB needed, 1\.0 MiB free`)
	if !re.MatchString(jb.Error.Message) {
		t.Errorf("message %q, want %s", jb.Error.Message, re)
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("%d blobs written", len(b))
	}
	if st, err := e.p.cs.ListStatuses(context.Background()); err != nil || len(st) != 0 {
		t.Errorf("ingests %+v, %v", st, err)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}

	// With space, the same install goes on.
	e.p.freeSpace = func(string) (uint64, error) { return 1 << 40, nil }
	if jb := e.install(nano10586()); jb.State != api.JobSucceeded {
		t.Errorf("install with space: %s %+v", jb.State, jb.Error)
	}
}

func TestDownloadedIn(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"zero", 0, "Downloaded in 0 hours, 0 minutes, 0 seconds."},
		{"ten seconds", 10*time.Second + 900*time.Millisecond, "Downloaded in 0 hours, 0 minutes, 10 seconds."},
		{"long", 2*time.Hour + 3*time.Minute + 4*time.Second, "Downloaded in 2 hours, 3 minutes, 4 seconds."},
		{"ones", time.Hour + time.Minute + time.Second, "Downloaded in 1 hour, 1 minute, 1 second."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := downloadedIn(tt.d); got != tt.want {
				t.Errorf("downloadedIn(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestInstallOutlivesCallerContext(t *testing.T) {
	e := newEnv(t, 1<<20)
	e.cat.tap.setThrottle(time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	jb, err := e.p.Install(ctx, nano10586())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := e.p.Watch(ctx, jb.ID)
	if err != nil {
		t.Fatal(err)
	}
	first := <-ch
	if first.Type != api.EventState || first.Job == nil {
		t.Fatalf("first event %+v", first)
	}
	// The client goes away: its stream closes, the job goes on.
	cancel()
	for range ch {
	}
	if final := e.wait(jb.ID); final.State != api.JobSucceeded {
		t.Fatalf("job after the caller left: %s %+v", final.State, final.Error)
	}
}
