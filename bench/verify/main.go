// Command verify measures what a signature policy adds to an install: the
// seeded WindowsServerCore (its base layer of --base-layer-size), signed by
// catalogd, installed by providerd from a source without a policy and from
// one that requires a signature by the catalog's key, in the same run,
// rounds interleaved. The report gives the medians and the overhead.
//
// It is run by `make bench` (bench/run.sh, BENCH=verify). Every server
// listens on 127.0.0.1.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/bench/harness"
)

const (
	imageName    = "WindowsServerCore"
	imageVersion = "10.0.14393.0"
)

func main() {
	var (
		binDir  = flag.String("bin", "bin", "directory holding catalogd and providerd")
		sizeStr = flag.String("base-layer-size", "256MiB", "size of the files of each base OS image's layer")
		runs    = flag.Int("runs", 7, "rounds; the median is reported")
		out     = flag.String("out", "", "write the Markdown report here too")
	)
	flag.Parse()
	size, err := harness.ParseSize(*sizeStr)
	if err != nil {
		fatal(err)
	}
	work, err := os.MkdirTemp("", "cp-bench-verify-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	procs := &harness.Procs{LogDir: work}
	defer procs.StopAll()
	report, err := run(procs, *binDir, work, *sizeStr, size, *runs)
	if err != nil {
		fatal(err)
	}
	if err := harness.WriteReport(report, *out); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench/verify:", err)
	os.Exit(1)
}

// client is providerd's API over its unix socket.
type client struct {
	hc *http.Client
}

func run(procs *harness.Procs, bin, work, sizeArg string, size int64, runs int) (string, error) {
	catalogd := filepath.Join(bin, "catalogd")
	env := []string{"CATALOGD_KEY_PASSWORD=bench"}
	harness.Step("seeding a catalog with %s base layers, signed", harness.Human(size))
	if err := harness.Run(env, catalogd, "keygen", "--out", filepath.Join(work, "k")); err != nil {
		return "", err
	}
	catRoot := filepath.Join(work, "catalogd")
	if err := harness.Run(env, catalogd, "seed", "--root", catRoot, "--base-layer-size", sizeArg,
		"--sign-key", filepath.Join(work, "k.key")); err != nil {
		return "", err
	}
	if err := harness.WarmStore(filepath.Join(catRoot, "content")); err != nil {
		return "", err
	}
	catAddr, err := harness.FreeAddr()
	if err != nil {
		return "", err
	}
	if _, err := procs.Start(catalogd, nil, "serve", "--root", catRoot, "--listen", catAddr); err != nil {
		return "", err
	}
	if err := harness.WaitReady("http://" + catAddr + "/healthz"); err != nil {
		return "", err
	}

	provAddr, err := harness.FreeAddr()
	if err != nil {
		return "", err
	}
	tokenFile := filepath.Join(work, "token")
	if _, err := harness.WriteToken(tokenFile); err != nil {
		return "", err
	}
	runDir := filepath.Join(work, "run")
	sock := filepath.Join(runDir, "providerd.sock")
	c := client{hc: harness.UnixClient(sock)}
	if _, err := procs.Start(filepath.Join(bin, "providerd"), nil, "serve", "--root", filepath.Join(work, "providerd"),
		"--run-dir", runDir, "--listen", provAddr, "--token-file", tokenFile, "--source", "catalog=http://"+catAddr); err != nil {
		return "", err
	}
	if err := harness.WaitFor("providerd", 30*time.Second, func() error { return c.call(http.MethodGet, "/healthz", nil, nil, http.StatusOK) }); err != nil {
		return "", err
	}
	pub, err := os.ReadFile(filepath.Join(work, "k.pub"))
	if err != nil {
		return "", err
	}
	signed := api.Source{Name: "signed", Location: "http://" + catAddr, TrustKeys: []string{string(pub)}, Signatures: api.SignaturesRequired}
	if err := c.call(http.MethodPost, "/v1/sources", signed, nil, http.StatusCreated); err != nil {
		return "", err
	}

	// The bytes of the image's layers and config, for MB/s.
	var n int64
	install := func(source string) func() (float64, error) {
		return func() (float64, error) {
			start := time.Now()
			harness.Settle()
			img, err := harness.Install(c.hc, "http://providerd", api.InstallRequest{Name: imageName,
				VersionOptions: api.VersionOptions{RequiredVersion: imageVersion}, Source: source})
			if err != nil {
				return 0, err
			}
			d := time.Since(start)
			n = img.Size
			if source == "signed" && !strings.HasPrefix(img.Signed, "key ") {
				return 0, fmt.Errorf("installed from %s with Signed %q", source, img.Signed)
			}
			if err := harness.RemoveImage(c.hc, "http://providerd", imageName); err != nil {
				return 0, err
			}
			return harness.MBps(img.Size, d), nil
		}
	}
	harness.Step("%d rounds: install %s %s without a policy, and under a required policy", runs, imageName, imageVersion)
	m, err := harness.Rounds(runs,
		harness.Contender{Name: "no policy", Run: install("catalog")},
		harness.Contender{Name: "required", Run: install("signed")},
	)
	if err != nil {
		return "", err
	}
	plain, verified := m[0], m[1]
	var sb strings.Builder
	fmt.Fprintf(&sb, "# What a signature policy adds to an install (%s)\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "The seeded %s %s (%s: its base layer of %s files and its config), signed by `catalogd seed --sign-key`, installed by providerd from catalogd on loopback: from a source without a policy, and from one whose policy requires a signature by the catalog's key (the `sha256-<hex>.sig` manifest and the payload are read from the source and verified before any layer is downloaded). Medians of %d rounds in one run, the two installs interleaved; each starts after a sync(2) and ends with the image removed.\n\n",
		imageName, imageVersion, harness.Human(n), harness.Human(size), runs)
	fmt.Fprintf(&sb, "| install | MB/s | seconds |\n|---|---:|---:|\n")
	fmt.Fprintf(&sb, "| no policy | %.0f | %.3f |\n| required policy | %.0f | %.3f |\n", plain, float64(n)/plain/1e6, verified, float64(n)/verified/1e6)
	fmt.Fprintf(&sb, "\nTime added by the verification: %.1f%% of the install without a policy (the target is under 5%%).\n", (plain/verified-1)*100)
	return sb.String(), nil
}

// call sends a JSON request and decodes the answer, which must have the
// status want.
func (c client) call(method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://providerd"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
