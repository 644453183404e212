// Package api is the wire contract of ContainerProvider: the JSON types that
// catalogd's find extension and providerd's API v1 exchange with clients.
package api

import "time"

// FindEntry is one image in the answer of catalogd's find extension
// (GET /v2/_find), and of providerd's Find.
type FindEntry struct {
	// Name is the display name, e.g. "NanoServer".
	Name string `json:"name"`
	// Repository is the OCI repository that holds the image, e.g. "nanoserver".
	Repository string `json:"repository"`
	// Version is the four-part version, which is also the image's tag.
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// Publisher is "CN=<publisher>".
	Publisher string `json:"publisher,omitempty"`
	// IsOSImage is true for base OS images, which have no parent.
	IsOSImage bool `json:"isOSImage"`
	// Parent names the image this one is built on; nil for a base OS image.
	Parent *ParentRef `json:"parent,omitempty"`
	// Digest is the manifest digest, the image's identity.
	Digest string `json:"digest"`
	// Size is the sum of the manifest, config and layer sizes.
	Size    int64     `json:"size"`
	Created time.Time `json:"created,omitempty"`
	// OSVersion is the config's os.version, e.g. "10.0.14393.0".
	OSVersion string `json:"os.version,omitempty"`
	// Source names the source the entry came from (providerd only).
	Source string `json:"source,omitempty"`
}

// ParentRef names a parent image.
type ParentRef struct {
	Name      string `json:"name"`
	Version   string `json:"version,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Publisher string `json:"publisher,omitempty"`
}

// FindResponse is the body of GET /v2/_find.
type FindResponse struct {
	Images []FindEntry `json:"images"`
}
