package provider

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// hostPlatform is the platform whose images the provider installs:
// windows (the images it serves are Windows container images, whatever
// the OS providerd runs on), the architecture providerd runs on, and the
// host's Windows version (major.minor.build), or "" where it cannot be
// known (off Windows): then every os.version is taken as runnable.
func hostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "windows", Architecture: runtime.GOARCH, OSVersion: hostOSVersion()}
}

// platformString is os/architecture[/variant], with the os.version in
// brackets when there is one.
func platformString(p *ocispec.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " (" + p.OSVersion + ")"
	}
	return s
}

// choosePlatform picks the manifest of an index that host runs, as a
// Windows host picks one:
//
//  1. the manifests whose platform has host's OS and architecture (an
//     index whose only manifest names no platform is taken as it is);
//  2. among those, the ones whose os.version the host can run: the same
//     major and minor version as the host's and a build no higher (a
//     Windows host runs containers of its own build, and older builds in
//     Hyper-V isolation, never newer ones); when the host's version is
//     unknown, all of them;
//  3. the highest os.version of those, compared numerically; the first
//     in the index among equals.
//
// Anything else is FailedPrecondition, listing the index's platforms.
func choosePlatform(list []ocispec.Descriptor, host ocispec.Platform) (ocispec.Descriptor, error) {
	valid := func(d ocispec.Descriptor) (ocispec.Descriptor, error) {
		if err := d.Digest.Validate(); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("manifest digest %q: %v: %w", d.Digest, err, errdefs.ErrFailedPrecondition)
		}
		return d, nil
	}
	if len(list) == 1 && list[0].Platform == nil {
		return valid(list[0])
	}
	var platforms []string
	var fits, runnable []ocispec.Descriptor
	for _, d := range list {
		platforms = append(platforms, platformString(d.Platform))
		if d.Platform == nil || d.Platform.OS != host.OS || d.Platform.Architecture != host.Architecture {
			continue
		}
		fits = append(fits, d)
		if canRun(host.OSVersion, d.Platform.OSVersion) {
			runnable = append(runnable, d)
		}
	}
	if len(fits) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("no %s/%s manifest among %d (%s): %w",
			host.OS, host.Architecture, len(list), strings.Join(platforms, ", "), errdefs.ErrFailedPrecondition)
	}
	if len(runnable) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("no manifest that this host (%s %s) can run among %d (%s): %w",
			host.OS, host.OSVersion, len(list), strings.Join(platforms, ", "), errdefs.ErrFailedPrecondition)
	}
	best := runnable[0]
	for _, d := range runnable[1:] {
		if compareOSVersions(d.Platform.OSVersion, best.Platform.OSVersion) > 0 {
			best = d
		}
	}
	return valid(best)
}

// canRun reports whether a host of Windows version host runs a container
// of os.version image (see choosePlatform). An empty host runs any; an
// image without an os.version runs anywhere.
func canRun(host, image string) bool {
	if host == "" || image == "" {
		return true
	}
	h, i := versionParts(host), versionParts(image)
	if len(h) < 3 || len(i) < 3 {
		return compareOSVersions(image, host) <= 0
	}
	return h[0] == i[0] && h[1] == i[1] && i[2] <= h[2]
}

// compareOSVersions compares dotted versions numerically, part by part; a
// missing part is 0, and a part that is not a number is below any that is.
func compareOSVersions(a, b string) int {
	x, y := versionParts(a), versionParts(b)
	for k := range max(len(x), len(y)) {
		var p, q int64
		if k < len(x) {
			p = x[k]
		}
		if k < len(y) {
			q = y[k]
		}
		switch {
		case p < q:
			return -1
		case p > q:
			return 1
		}
	}
	return 0
}

func versionParts(v string) []int64 {
	var out []int64
	for _, s := range strings.Split(strings.TrimSpace(v), ".") {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			n = -1
		}
		out = append(out, n)
	}
	return out
}
