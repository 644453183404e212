package archive

import (
	"encoding/json"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageFacts are what tell whether an image of an archive is the base of
// another.
type imageFacts struct {
	digest digest.Digest // of the manifest
	base   digest.Digest // the manifest's org.opencontainers.image.base.digest
	// diffIDs are the config's rootfs.diff_ids, the digests of the
	// uncompressed layers; known reports that the config gave them.
	diffIDs []digest.Digest
	known   bool
}

// baseImages reports, for each image, whether it is the base of another
// image of images: the other's manifest names it in base.digest, or its
// diff_ids are a proper prefix of the other's. The digests of compressed
// layers are never compared: a child whose layers were compressed again (a
// zstd child of a gzip parent) has other layer digests than its parent, and
// the same diff_ids. The diff_ids go into a trie, one node per distinct
// prefix, so the cost is linear in the layers of all the images.
func baseImages(images []imageFacts) []bool {
	out := make([]bool, len(images))
	named := map[digest.Digest]bool{}
	for _, f := range images {
		if f.base != "" && f.base != f.digest {
			named[f.base] = true
		}
	}
	type edge struct {
		from int
		d    digest.Digest
	}
	next := map[edge]int{}
	hasChild := []bool{false} // node 0 is the empty prefix
	ends := make([]int, len(images))
	for i, f := range images {
		if !f.known {
			ends[i] = -1
			continue
		}
		n := 0
		for _, d := range f.diffIDs {
			e := edge{n, d}
			c, ok := next[e]
			if !ok {
				c = len(hasChild)
				hasChild = append(hasChild, false)
				next[e] = c
			}
			hasChild[n] = true
			n = c
		}
		ends[i] = n
	}
	for i, f := range images {
		out[i] = named[f.digest] || (ends[i] >= 0 && hasChild[ends[i]])
	}
	return out
}

// manifestBase is the base.digest annotation of the manifest bytes b, empty
// when there is none or b does not parse.
func manifestBase(b []byte) digest.Digest {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	return digest.Digest(m.Annotations[ocispec.AnnotationBaseImageDigest])
}

// configDiffIDs are the rootfs.diff_ids of the config bytes b; false when b
// does not parse.
func configDiffIDs(b []byte) ([]digest.Digest, bool) {
	var c struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if json.Unmarshal(b, &c) != nil {
		return nil, false
	}
	return c.RootFS.DiffIDs, true
}
