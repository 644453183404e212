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
	// Signatures says that the registry holds a cosign signature
	// manifest for the image (its sha256-<hex>.sig tag); whether a
	// trusted key made it is checked at install.
	Signatures bool `json:"signatures,omitempty"`
	// Policy is the signature policy of Source (providerd only, when it
	// checks): "required" or "optional".
	Policy string `json:"policy,omitempty"`
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
	// Warnings (providerd only) say which sources' indexes are
	// incomplete or stale, so that the answer may miss images.
	Warnings []string `json:"warnings,omitempty"`
}

// FindChanges is the body of GET /v2/_find/changes?since=SEQ: the changes
// of catalogd's find index after the sequence number since, in order.
//
// A mirror keeps Index and Last, and asks from Last next. When Resync is
// set, the feed cannot answer from since (the index was rebuilt, or it is
// another index than the mirror followed): the mirror starts again from
// since=0, which lists every entry (each entry's last change).
type FindChanges struct {
	// Index is the identity of the index; another Index than the one a
	// mirror followed means that the mirror must resync.
	Index  string `json:"index"`
	Resync bool   `json:"resync,omitempty"`
	// Last is the sequence number to ask from next.
	Last uint64 `json:"last"`
	// More says that changes follow Last: ask again at once.
	More    bool         `json:"more"`
	Changes []FindChange `json:"changes"`
}

// FindChange is the last change of one entry, keyed by its repository and
// manifest digest: the entry as it now is, or its removal.
type FindChange struct {
	Seq        uint64 `json:"seq"`
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Removed    bool   `json:"removed,omitempty"`
	// Entry is the entry without its parent (nil when Removed); BaseName
	// and BaseDigest are the base annotations that its parent resolves
	// from (catalog/find.Parent).
	Entry      *FindEntry `json:"entry,omitempty"`
	BaseName   string     `json:"baseName,omitempty"`
	BaseDigest string     `json:"baseDigest,omitempty"`
}
