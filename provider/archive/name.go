package archive

import (
	"strings"

	"github.com/distribution/reference"
)

// AnnotationContainerdName is the annotation of an index.json entry that
// carries the image's full name in the archives of containerd and of docker
// 25 and later ("docker.io/library/nginx:1.25"), next to
// org.opencontainers.image.ref.name, which carries its tag alone.
const AnnotationContainerdName = "io.containerd.image.name"

// dockerHub is the registry that a name without a host names.
const dockerHub = "docker.io"

// Name is an image name as archives write it, taken apart.
type Name struct {
	// Host is the registry's host, with its port ("127.0.0.1:5000"); empty
	// when the name has none, or names Docker Hub.
	Host string
	// Repository is the name without the host, and, on Docker Hub, without
	// "library/": "microsoft/iis", "nginx".
	Repository string
	// Tag is the tag, empty when the name has none.
	Tag string
}

// ParseName takes apart an image name as archives give it:
// "nanoserver:10.0.10586.0", "127.0.0.1:5000/microsoft/iis:1.0.0.0",
// "docker.io/library/nginx:1.25" (the first part is a host when it holds
// a '.' or a ':' or is "localhost", as docker reads names). A digest after
// the name is dropped. It reports false for what is not a name.
func ParseName(s string) (Name, bool) {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(s))
	if err != nil {
		return Name{}, false
	}
	n := Name{Host: reference.Domain(named), Repository: reference.Path(named)}
	if n.Host == dockerHub {
		n.Host = ""
		n.Repository = strings.TrimPrefix(n.Repository, "library/")
	}
	if t, ok := named.(reference.Tagged); ok {
		n.Tag = t.Tag()
	}
	return n, true
}

// QualifiedName is "host/repository:tag", or "repository:tag" without a
// host: the name an archive gives an image whose registry is known.
func QualifiedName(host, repository, tag string) string {
	s := repository
	if host != "" {
		s = host + "/" + s
	}
	if tag != "" {
		s += ":" + tag
	}
	return s
}

// refTag is what org.opencontainers.image.ref.name carries for the image
// named name: its tag, as docker 25 and containerd write it. A name that
// does not parse, or has no tag, is written as it is.
func refTag(name string) string {
	if n, ok := ParseName(name); ok && n.Tag != "" {
		return n.Tag
	}
	return name
}

// isTagOnly reports whether a ref.name is a tag alone ("1.0.0.0"), not a
// name: it holds no '/', ':' or '@'.
func isTagOnly(refName string) bool {
	return refName != "" && !strings.ContainsAny(refName, "/:@")
}
