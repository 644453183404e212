package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

var nanoServer = api.Image{Name: "NanoServer", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true,
	Digest: "sha256:" + strings.Repeat("ab", 32)}

// TestFormatParents is the golden table of images --parent: the
// reference's `Get-ContainerImage | select Name, ParentImage`, character
// for character.
func TestFormatParents(t *testing.T) {
	got := formatParents([]api.Image{
		{Name: "NanoServer", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true},
		{Name: "NanoServerIIS", Publisher: "CN=Demo", Version: "1.0.0.0",
			ParentImage: &api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft", Digest: nanoServer.Digest}},
	})
	const want = "" +
		"Name              ParentImage\n" +
		"----              -----------\n" +
		"NanoServer\n" +
		"NanoServerIIS     ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']\n"
	if got != want {
		t.Fatalf("parents table:\n%s\nwant:\n%s", got, want)
	}
}

func TestImagesParent(t *testing.T) {
	e := newEnv(t, &fakeBackend{imagesResult: []api.Image{
		nanoServer,
		{Name: "DemoImage", Publisher: "CN=Demo", Version: "1.0.0.0",
			ParentImage: &api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft"}},
	}})
	r := e.run(t, "", "images", "--parent").want(t, 0)
	if !strings.Contains(r.stdout, "DemoImage         ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']\n") ||
		!strings.Contains(r.stdout, "\nNanoServer\n") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
}

func TestFormatContainers(t *testing.T) {
	a := &app{loc: time.UTC}
	got := a.formatContainers([]api.Container{
		{ID: strings.Repeat("0c", 32), Name: "web1", Image: "NanoServer 10.0.10586.0", ParentImageName: "NanoServer", State: api.ContainerStopped, Created: at},
		{ID: strings.Repeat("1d", 32), Name: "a-container-with-a-long-name", Image: "microsoft/iis 1.0.0.0", ParentImageName: "microsoft/iis", State: api.ContainerRunning, Created: at},
	})
	const want = "" +
		"Name                          Id            Image                       ParentImageName     State     Created\n" +
		"----                          --            -----                       ---------------     -----     -------\n" +
		"web1                          0c0c0c0c0c0c  NanoServer 10.0.10586.0     NanoServer          Stopped   2016-01-12 09:30:00\n" +
		"a-container-with-a-long-name  1d1d1d1d1d1d  microsoft/iis 1.0.0.0       microsoft/iis       Running   2016-01-12 09:30:00\n"
	if got != want {
		t.Fatalf("containers table:\n%s\nwant:\n%s", got, want)
	}
}

// TestPlanSave checks the path rules of a local save, the daemon's.
func TestPlanSave(t *testing.T) {
	root := t.TempDir()
	existing := filepath.Join(root, "existing.tar")
	readOnly := filepath.Join(root, "read-only.tar")
	for _, f := range []string{existing, readOnly} {
		if err := os.WriteFile(f, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(readOnly, 0o444); err != nil {
		t.Fatal(err)
	}
	roDir := filepath.Join(root, "ro")
	if err := os.Mkdir(roDir, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		force    bool
		dir      string
		file     string
		class    error
		message  string
		created  string // a directory the plan creates
		notThere string // a directory the plan must not create
	}{
		{name: "existing directory", path: root, dir: root},
		{name: "new file", path: filepath.Join(root, "new.tar"), dir: root, file: "new.tar"},
		{name: "existing file", path: existing, class: errdefs.ErrAlreadyExists, message: "file " + existing + " exists; use --force to overwrite it"},
		{name: "existing file with force", path: existing, force: true, dir: root, file: "existing.tar"},
		{name: "read-only file", path: readOnly, force: true, class: errdefs.ErrPermissionDenied, message: "file " + readOnly + " is read-only"},
		{name: "read-only directory", path: roDir, class: errdefs.ErrPermissionDenied, message: "directory " + roDir + " is read-only"},
		{name: "missing directory", path: filepath.Join(root, "a", "b") + "/", class: errdefs.ErrNotFound,
			message: "directory " + filepath.Join(root, "a", "b") + " does not exist; use --force to create it", notThere: filepath.Join(root, "a")},
		{name: "missing directory with force", path: filepath.Join(root, "c", "d") + "/", force: true, dir: filepath.Join(root, "c", "d"), created: filepath.Join(root, "c", "d")},
		{name: "file in a missing directory", path: filepath.Join(root, "e", "out.tar"), class: errdefs.ErrNotFound, notThere: filepath.Join(root, "e")},
		{name: "file in a missing directory with force", path: filepath.Join(root, "f", "out.tar"), force: true, dir: filepath.Join(root, "f"), file: "out.tar", created: filepath.Join(root, "f")},
		{name: "under a file", path: filepath.Join(existing, "x.tar"), class: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planSave(tc.path, tc.force)
			if tc.class != nil {
				if !errors.Is(err, tc.class) {
					t.Fatalf("error %v, want class %v", err, tc.class)
				}
				if tc.message != "" && !strings.HasPrefix(err.Error(), tc.message) {
					t.Fatalf("message %q, want it to start with %q", err, tc.message)
				}
			} else if err != nil || got.dir != tc.dir || got.file != tc.file {
				t.Fatalf("plan %+v, %v; want dir %q file %q", got, err, tc.dir, tc.file)
			}
			if tc.created != "" {
				if st, err := os.Stat(tc.created); err != nil || !st.IsDir() {
					t.Fatalf("directory %s not created: %v", tc.created, err)
				}
			}
			if tc.notThere != "" {
				if _, err := os.Stat(tc.notThere); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("directory %s created: %v", tc.notThere, err)
				}
			}
		})
	}
	if left := leftovers(t, root); len(left) != 0 {
		t.Fatalf("the plan left files: %v", left)
	}
}

// leftovers lists the temporary files a save may leave in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".cimage-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// savingBackend streams archive for a save, naming the image first when
// begin.
func savingBackend(archive []byte, begin bool) *fakeBackend {
	return &fakeBackend{save: func(req api.SaveRequest, w io.Writer) (api.Image, error) {
		if begin {
			w.(providerserver.SaveStarter).BeginSave(nanoServer)
		}
		for chunk := range slices.Chunk(archive, 4096) {
			if _, err := w.Write(chunk); err != nil {
				return api.Image{}, err
			}
		}
		return nanoServer, nil
	}}
}

func TestSaveLocal(t *testing.T) {
	archive := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	for _, begin := range []bool{true, false} {
		t.Run(fmt.Sprintf("name known before the stream %v", begin), func(t *testing.T) {
			e := newEnv(t, savingBackend(archive, begin))
			dir := t.TempDir()
			r := e.run(t, "", "save", "NanoServer", "--required-version", "10.0.10586.0", "--path", dir).want(t, 0)
			file := filepath.Join(dir, "NanoServer-10-0-10586-0.tar")
			if r.stdout != "Saved NanoServer 10.0.10586.0 to "+file+" (128.0 KiB)\n" {
				t.Fatalf("stdout %q", r.stdout)
			}
			data, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(data, archive) {
				t.Fatalf("file: %d bytes, %v", len(data), err)
			}
			if want := (api.SaveRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}); e.fake.saves[0] != want {
				t.Fatalf("request %+v, want %+v", e.fake.saves[0], want)
			}

			// Again: the file exists.
			r = e.run(t, "", "save", "NanoServer", "--path", dir).want(t, 4)
			if !strings.Contains(r.stderr, "file "+file+" exists; use --force to overwrite it") {
				t.Fatalf("stderr %q", r.stderr)
			}
			e.run(t, "", "save", "NanoServer", "--path", dir, "--force").want(t, 0)
			if left := leftovers(t, dir); len(left) != 0 {
				t.Fatalf("left %v", left)
			}
		})
	}
	t.Run("to a file, JSON", func(t *testing.T) {
		e := newEnv(t, savingBackend(archive, true))
		file := filepath.Join(t.TempDir(), "nano.tar")
		r := e.run(t, "", "--output", "json", "save", "--id", "abab", "--path", file).want(t, 0)
		var res api.SaveResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Path != file || res.Size != int64(len(archive)) || res.Image.Version != "10.0.10586.0" {
			t.Fatalf("json %q: %v", r.stdout, err)
		}
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("file %v, %v", st, err)
		}
		if e.fake.saves[0] != (api.SaveRequest{ID: "abab"}) {
			t.Fatalf("request %+v", e.fake.saves[0])
		}
	})
	t.Run("a missing directory needs --force", func(t *testing.T) {
		e := newEnv(t, savingBackend(archive, true))
		dir := filepath.Join(t.TempDir(), "new") + "/"
		r := e.run(t, "", "save", "NanoServer", "--path", dir).want(t, 3)
		if !strings.Contains(r.stderr, "does not exist; use --force to create it") || len(e.fake.saves) != 0 {
			t.Fatalf("stderr %q, saves %v", r.stderr, e.fake.saves)
		}
		e.run(t, "", "save", "NanoServer", "--path", dir, "--force").want(t, 0)
		if _, err := os.Stat(filepath.Join(dir, "NanoServer-10-0-10586-0.tar")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a failure half-way writes nothing", func(t *testing.T) {
		fake := &fakeBackend{save: func(_ api.SaveRequest, w io.Writer) (api.Image, error) {
			w.(providerserver.SaveStarter).BeginSave(nanoServer)
			if _, err := w.Write(archive); err != nil {
				return api.Image{}, err
			}
			return api.Image{}, fmt.Errorf("blob sha256:ab: %w", errdefs.ErrFailedPrecondition)
		}}
		e := newEnv(t, fake)
		dir := t.TempDir()
		r := e.run(t, "", "save", "NanoServer", "--path", dir).want(t, 1)
		if !strings.Contains(r.stderr, "did not arrive whole") || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("stderr %q", r.stderr)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("left %v", entries)
		}
	})
	t.Run("not found", func(t *testing.T) {
		e := newEnv(t, &fakeBackend{})
		dir := t.TempDir()
		e.run(t, "", "save", "Nope", "--path", dir).want(t, 3)
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("left %v", entries)
		}
	})
	t.Run("usage", func(t *testing.T) {
		e := newEnv(t, &fakeBackend{})
		for _, args := range [][]string{
			{"save", "NanoServer"},
			{"save", "--path", "/tmp"},
			{"save", "a", "b", "--path", "/tmp"},
			{"save", "a", "--id", "ab", "--path", "/tmp"},
			{"save", "--id", "ab", "--all-versions", "--path", "/tmp"},
		} {
			if r := e.run(t, "", args...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
	})
}

func TestSaveRemotePath(t *testing.T) {
	fake := &fakeBackend{saveResult: api.SaveResult{Path: "/srv/images/NanoServer-10-0-10586-0.tar", Size: 3 << 20, Image: nanoServer}}
	e := newEnv(t, fake)
	r := e.run(t, "", "save", "NanoServer", "--source", "catalog", "--path", "/srv/images", "--force", "--remote-path").want(t, 0)
	if r.stdout != "Saved NanoServer 10.0.10586.0 to /srv/images/NanoServer-10-0-10586-0.tar (3.0 MiB)\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if want := (api.SaveRequest{Name: "NanoServer", Source: "catalog", Path: "/srv/images", Force: true}); fake.saves[0] != want {
		t.Fatalf("request %+v, want %+v", fake.saves[0], want)
	}
	// A relative path means nothing on another host.
	r = e.run(t, "", "save", "NanoServer", "--path", "images", "--remote-path").want(t, 1)
	if !strings.Contains(r.stderr, "absolute path") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestInstallPath(t *testing.T) {
	iis := api.Image{Name: "microsoft/iis", Publisher: "CN=Microsoft", Version: "1.0.0.0",
		ParentImage: &api.ParentRef{Name: "WindowsServerCore", Version: "10.0.10586.0"}}
	wsc := api.Image{Name: "WindowsServerCore", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true}
	fake := &fakeBackend{loadResult: api.LoadResult{Images: []api.Image{wsc, iis}}}
	e := newEnv(t, fake)
	file := filepath.Join(t.TempDir(), "iis.tar")
	archive := bytes.Repeat([]byte("tar"), 10000)
	if err := os.WriteFile(file, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "", "install", "--path", file).want(t, 0)
	const want = "" +
		"Name                    Publisher       Version         IsOSImage\n" +
		"----                    ---------       -------         ---------\n" +
		"WindowsServerCore       CN=Microsoft    10.0.10586.0    True\n" +
		"microsoft/iis           CN=Microsoft    1.0.0.0         False\n"
	if r.stdout != want {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	if !bytes.Equal(fake.loaded, archive) {
		t.Fatalf("uploaded %d bytes, want %d", len(fake.loaded), len(archive))
	}
	e.run(t, "", "install", "--path", file, "--remote-path").want(t, 0)
	if !slices.Equal(fake.loadFiles, []string{file}) {
		t.Fatalf("load files %v", fake.loadFiles)
	}
	r = e.run(t, "", "install", "--path", filepath.Join(t.TempDir(), "none.tar")).want(t, 3)
	if !strings.Contains(r.stderr, "none.tar") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = e.run(t, "", "install", "--path", t.TempDir()).want(t, 1)
	if !strings.Contains(r.stderr, "neither index.json nor manifest.json") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// A layout directory goes as a tar of its layout, and nothing else.
	layout := t.TempDir()
	blob := "blobs/sha256/" + strings.Repeat("ab", 32)
	files := map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": `{"schemaVersion":2}`, blob: "blob"}
	for name, body := range files {
		p := filepath.Join(layout, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(layout, "ingest"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.run(t, "", "install", "--path", layout).want(t, 0)
	tr := tar.NewReader(bytes.NewReader(fake.loaded))
	var names []string
	for range 100 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if body, ok := files[h.Name]; ok {
			if b, _ := io.ReadAll(tr); string(b) != body {
				t.Errorf("%s: %q, want %q", h.Name, b, body)
			}
		}
	}
	if want := []string{"blobs/", "blobs/sha256/", blob, "index.json", "oci-layout"}; !slices.Equal(names, want) {
		t.Fatalf("uploaded tar holds %v, want %v", names, want)
	}
	fake.loadErr = fmt.Errorf("archive entry ../../etc/passwd: escapes the archive: %w", errdefs.ErrInvalidArgument)
	r = e.run(t, "", "install", "--path", file).want(t, 1)
	if r.stderr != "cimage: archive entry ../../etc/passwd: escapes the archive\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	for _, args := range [][]string{
		{"install", "NanoServer", "--path", file},
		{"install", "--path", file, "--detach"},
		{"install", "--path", file, "--required-version", "1.0"},
		{"install", "NanoServer", "--remote-path"},
	} {
		if r := e.run(t, "", args...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestContainerCommands(t *testing.T) {
	web1 := api.Container{ID: strings.Repeat("0c", 32), Name: "web1", Image: "NanoServer 10.0.10586.0", ParentImageName: "NanoServer", State: api.ContainerStopped, Created: at}
	fake := &fakeBackend{containersResult: []api.Container{web1}}
	e := newEnv(t, fake)
	const header = "" +
		"Name            Id            Image                       ParentImageName     State     Created\n" +
		"----            --            -----                       ---------------     -----     -------\n"

	for _, args := range [][]string{{"container", "list"}, {"containers"}} {
		r := e.run(t, "", args...).want(t, 0)
		if r.stdout != header+"web1            0c0c0c0c0c0c  NanoServer 10.0.10586.0     NanoServer          Stopped   2016-01-12 09:30:00\n" {
			t.Fatalf("%v:\n%s", args, r.stdout)
		}
	}
	r := e.run(t, "", "containers", "--output", "json").want(t, 0)
	var list struct{ Containers []api.Container }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Containers) != 1 {
		t.Fatalf("json %q: %v", r.stdout, err)
	}

	r = e.run(t, "", "container", "create", "NanoServer", "--name", "demo").want(t, 0)
	if r.stdout != header+"demo            0c0c0c0c0c0c  NanoServer 10.0.10586.0     NanoServer          Created   2016-01-12 09:30:00\n" {
		t.Fatalf("create:\n%s", r.stdout)
	}
	if fake.creates[0] != (api.ContainerCreateRequest{Image: "NanoServer", Name: "demo"}) {
		t.Fatalf("create request %+v", fake.creates[0])
	}
	e.run(t, "", "container", "create", "Nope").want(t, 3)
	e.run(t, "", "container", "create").want(t, 2)

	r = e.run(t, "", "container", "start", "web1").want(t, 0)
	if !strings.Contains(r.stdout, "Running") {
		t.Fatalf("start:\n%s", r.stdout)
	}
	e.run(t, "", "container", "stop", "web1").want(t, 0)
	e.run(t, "", "container", "stop", "nope").want(t, 3)
	if !slices.Equal(fake.states, []string{"start web1", "stop web1", "stop nope"}) {
		t.Fatalf("states %v", fake.states)
	}

	r = e.run(t, "", "container", "rm", "running").want(t, 4)
	if r.stderr != "cimage: container running is running; stop it or use --force\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = e.run(t, "", "container", "rm", "--force", "running").want(t, 0)
	if r.stdout != "Removed container running\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if !slices.Equal(fake.removedCtrs, []string{"running force=false", "running force=true"}) {
		t.Fatalf("removed %v", fake.removedCtrs)
	}
	e.run(t, "", "container").want(t, 2)
	e.run(t, "", "container", "rm").want(t, 2)
}

// untar reads the entries of a tar: name -> content ("dir" for a
// directory), and the modes.
func untar(t *testing.T, data []byte) (map[string]string, map[string]int64) {
	t.Helper()
	entries, modes := map[string]string{}, map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(data))
	for range 1000 {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, modes
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" {
			t.Fatalf("%s keeps its local owner: %+v", hdr.Name, hdr)
		}
		modes[hdr.Name] = hdr.Mode
		switch hdr.Typeflag {
		case tar.TypeDir:
			entries[hdr.Name] = "dir"
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			entries[hdr.Name] = string(b)
		default:
			t.Fatalf("entry %s of type %c", hdr.Name, hdr.Typeflag)
		}
	}
	t.Fatal("too many entries")
	return nil, nil
}

func TestContainerCopy(t *testing.T) {
	src := t.TempDir()
	site := filepath.Join(src, "site")
	for path, content := range map[string]string{
		"site/index.html":       "<h1>hello</h1>",
		"site/css/main.css":     "body{}",
		"site/empty/":           "",
		"site/bin/run.sh":       "#!/bin/sh\n",
		"single.txt":            "one file",
		"links/real.txt":        "real",
		"links/sub/nested.conf": "x=1",
	} {
		p := filepath.Join(src, path)
		if strings.HasSuffix(path, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(site, "bin", "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.txt", filepath.Join(src, "links", "link.txt")); err != nil {
		t.Fatal(err)
	}
	fake := &fakeBackend{}
	e := newEnv(t, fake)

	t.Run("a directory", func(t *testing.T) {
		r := e.run(t, "", "container", "cp", site, "web1:/inetpub").want(t, 0)
		if r.stdout != "Copied "+site+" to web1:/inetpub\n" {
			t.Fatalf("stdout %q", r.stdout)
		}
		entries, modes := untar(t, fake.copied["web1 /inetpub"])
		want := map[string]string{
			"site/": "dir", "site/index.html": "<h1>hello</h1>", "site/css/": "dir", "site/css/main.css": "body{}",
			"site/empty/": "dir", "site/bin/": "dir", "site/bin/run.sh": "#!/bin/sh\n",
		}
		if fmt.Sprint(entries) != fmt.Sprint(want) {
			t.Fatalf("entries %v, want %v", entries, want)
		}
		if modes["site/bin/run.sh"]&0o777 != 0o755 || modes["site/index.html"]&0o777 != 0o644 {
			t.Fatalf("modes %v", modes)
		}
	})
	t.Run("a file", func(t *testing.T) {
		e.run(t, "", "container", "cp", filepath.Join(src, "single.txt"), "web1:/data").want(t, 0)
		entries, _ := untar(t, fake.copied["web1 /data"])
		if fmt.Sprint(entries) != fmt.Sprint(map[string]string{"single.txt": "one file"}) {
			t.Fatalf("entries %v", entries)
		}
	})
	t.Run("a symbolic link is refused without --follow-link", func(t *testing.T) {
		before := len(fake.copied)
		r := e.run(t, "", "container", "cp", filepath.Join(src, "links"), "web1:/links").want(t, 1)
		if !strings.Contains(r.stderr, "link.txt is a symbolic link") || !strings.Contains(r.stderr, "--follow-link") {
			t.Fatalf("stderr %q", r.stderr)
		}
		if len(fake.copied) != before {
			t.Fatal("a refused copy reached the container")
		}
		e.run(t, "", "container", "cp", "--follow-link", filepath.Join(src, "links"), "web1:/links").want(t, 0)
		entries, _ := untar(t, fake.copied["web1 /links"])
		if entries["links/link.txt"] != "real" || entries["links/sub/nested.conf"] != "x=1" {
			t.Fatalf("entries %v", entries)
		}
	})
	t.Run("a tar on stdin", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "from-stdin.txt", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("hi"))
		_ = tw.Close()
		e.run(t, buf.String(), "container", "cp", "-", "web1:/in").want(t, 0)
		if !bytes.Equal(fake.copied["web1 /in"], buf.Bytes()) {
			t.Fatal("stdin was not sent as it is")
		}
	})
	t.Run("refusals", func(t *testing.T) {
		e.run(t, "", "container", "cp", filepath.Join(src, "none"), "web1:/x").want(t, 3)
		for _, args := range [][]string{
			{"container", "cp", site},
			{"container", "cp", site, "web1"},
			{"container", "cp", site, ":/x"},
			{"container", "cp", site, "web1:"},
		} {
			if r := e.run(t, "", args...); r.code != 2 || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
		fake.copyErr = fmt.Errorf("no such container nope: %w", errdefs.ErrNotFound)
		r := e.run(t, "", "container", "cp", site, "nope:/x").want(t, 3)
		if r.stderr != "cimage: no such container nope\n" {
			t.Fatalf("stderr %q", r.stderr)
		}
	})
}

func TestNew(t *testing.T) {
	fake := &fakeBackend{}
	e := newEnv(t, fake)
	r := e.run(t, "", "new", "--container", "web1", "--publisher", "Demo", "--name", "DemoImage", "--version", "1.0", "--description", "a demo").want(t, 0)
	const want = "" +
		"Name                    Publisher       Version         IsOSImage\n" +
		"----                    ---------       -------         ---------\n" +
		"DemoImage               CN=Demo         1.0.0.0         False\n"
	if r.stdout != want {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	if want := (api.CommitRequest{Container: "web1", Name: "DemoImage", Publisher: "Demo", Version: "1.0", Description: "a demo"}); fake.commits[0] != want {
		t.Fatalf("request %+v, want %+v", fake.commits[0], want)
	}
	r = e.run(t, "", "new", "--container", "web1", "--publisher", "Demo", "--name", "DemoImage").want(t, 2)
	if r.stderr != "cimage: new needs --version\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "new", "DemoImage").want(t, 2)
	fake.commitErr = fmt.Errorf("image DemoImage 1.0.0.0 exists; use --force to replace it: %w", errdefs.ErrAlreadyExists)
	e.run(t, "", "new", "--container", "web1", "--publisher", "Demo", "--name", "DemoImage", "--version", "1.0").want(t, 4)
	fake.commitErr = fmt.Errorf("container nope: %w", errdefs.ErrNotFound)
	e.run(t, "", "new", "--container", "nope", "--publisher", "Demo", "--name", "DemoImage", "--version", "1.0").want(t, 3)
}

// TestNewCommandsHelp: every new command has its help, with its flags.
func TestNewCommandsHelp(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	r := e.run(t, "", "-h").want(t, 0)
	for _, want := range []string{"save NAME", "new --container", "container create IMAGE", "container list", "container cp", "containers", "install NAME | --path FILE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, tc := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"save", "-h"}, []string{"-path", "-force", "-remote-path", "-id", "-source", "-required-version"}},
		{[]string{"install", "-h"}, []string{"-path", "-remote-path"}},
		{[]string{"new", "-h"}, []string{"-container", "-publisher", "-name", "-version", "-description", "-force"}},
		{[]string{"images", "-h"}, []string{"-parent"}},
		{[]string{"container", "create", "-h"}, []string{"-name"}},
		{[]string{"container", "list", "-h"}, nil},
		{[]string{"container", "start", "-h"}, nil},
		{[]string{"container", "stop", "-h"}, nil},
		{[]string{"container", "rm", "-h"}, []string{"-force"}},
		{[]string{"container", "cp", "-h"}, []string{"-follow-link"}},
		{[]string{"containers", "-h"}, nil},
	} {
		r := e.run(t, "", tc.args...).want(t, 0)
		if !strings.HasPrefix(r.stdout, "Usage: cimage "+strings.Join(tc.args[:len(tc.args)-1], " ")) {
			t.Errorf("%v: %s", tc.args, r.stdout)
		}
		for _, f := range tc.flags {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("%v lacks %s:\n%s", tc.args, f, r.stdout)
			}
		}
	}
}
