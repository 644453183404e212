package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// This file is providerd's API v1: the JSON bodies of /v1/... requests and
// responses. Paths, methods and query parameters are listed in
// server/provider/routes.go and in the README.

// Source is a place images are found and installed from: an OCI
// Distribution registry, with or without catalogd's find extension.
type Source struct {
	// Name identifies the source, e.g. "catalog". [A-Za-z0-9._-], 1-64.
	Name string `json:"name"`
	// Location is the registry's base URL, e.g. "http://127.0.0.1:5000".
	Location string `json:"location"`
	// Insecure skips TLS certificate verification of an https Location.
	Insecure bool `json:"insecure,omitempty"`
	// Trusted marks a source whose packages PackageManagement installs
	// without asking (Register-PackageSource -Trusted, PowerShellGet's
	// InstallationPolicy Trusted); the PowerShell provider reports it
	// as the package source's IsTrusted. providerd keeps and returns it
	// and checks nothing differently for it: what an install verifies is
	// Signatures and TrustKeys alone.
	Trusted bool `json:"trusted,omitempty"`
	// Username and Password are sent to the registry's token service or
	// as Basic credentials when it asks. Password is never returned.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TrustKeys are the public keys (PKIX PEM, cosign.pub) whose
	// signatures the source's images are checked against.
	TrustKeys []string `json:"trustKeys,omitempty"`
	// Signatures is the policy: SignaturesRequired (an image, or a parent
	// of it, without a valid signature by a trusted key is refused),
	// SignaturesOptional (it installs, recorded as unverified) or
	// SignaturesOff (nothing is checked). The default is off without
	// keys, required with them.
	Signatures string `json:"signatures,omitempty"`
	// TrustKeyIDs are the IDs of TrustKeys, "sha256:<hex>" of each key's
	// DER (read only).
	TrustKeyIDs []string `json:"trustKeyIds,omitempty"`
	// Mirrors are registries that serve the source's content, tried in
	// order before the Location for what is addressed by digest (blobs,
	// manifests by digest), and for tags and find entries while the
	// Location is unreachable: pull-through caches (the distribution
	// registry's proxy mode, Harbor proxy projects), or registries that
	// zot sync, crane copy or skopeo sync fill.
	Mirrors []SourceMirror `json:"mirrors,omitempty"`
	// Status is the state of providerd's index of the source (read
	// only; set by GET /v1/sources and POST /v1/sources/{name}/refresh).
	Status *SourceStatus `json:"status,omitempty"`
}

// WithoutPasswords is s with its and its mirrors' passwords left out, as
// every answer gives a source.
func (s Source) WithoutPasswords() Source {
	s.Password = ""
	if s.Mirrors != nil {
		ms := make([]SourceMirror, len(s.Mirrors))
		for i, m := range s.Mirrors {
			m.Password = ""
			ms[i] = m
		}
		s.Mirrors = ms
	}
	return s
}

// SourceMirror is a registry mirror of a source, as a host of
// containerd's hosts.toml is: its capabilities say what it may be asked.
type SourceMirror struct {
	// Location is the mirror's base URL, e.g. "http://cache:5000".
	Location string `json:"location"`
	// Insecure skips TLS certificate verification of an https Location.
	Insecure bool `json:"insecure,omitempty"`
	// Username and Password are the mirror's own credentials, sent as
	// the source's are. Password is never returned.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Namespace is a repository prefix under which the mirror holds the
	// source's repositories, as a Harbor proxy project does
	// ("library" for library/nanoserver); "" for none. A mirror with a
	// namespace can only pull.
	Namespace string `json:"namespace,omitempty"`
	// Capabilities are MirrorPull and MirrorResolve; empty means both,
	// or pull alone with a Namespace.
	Capabilities []string `json:"capabilities,omitempty"`
}

// The capabilities of a mirror.
const (
	// MirrorPull: blobs and manifests are fetched by digest from the
	// mirror first; their bytes are verified against the digest, so the
	// mirror cannot change what is installed.
	MirrorPull = "pull"
	// MirrorResolve: while the source's Location is unreachable, tags and
	// find entries are read from the mirror. Its answers are trusted as
	// the Location's are (a signature policy still applies).
	MirrorResolve = "resolve"
)

// Can reports whether the mirror has capability c.
func (m SourceMirror) Can(c string) bool {
	if len(m.Capabilities) == 0 {
		return c == MirrorPull || (c == MirrorResolve && m.Namespace == "")
	}
	for _, have := range m.Capabilities {
		if have == c {
			return true
		}
	}
	return false
}

// The signature policies of a source.
const (
	SignaturesRequired = "required"
	SignaturesOptional = "optional"
	SignaturesOff      = "off"
)

// IDSignatureNotTrusted is the error id of an image that a source's
// signature policy refuses: no valid signature by a trusted key.
const IDSignatureNotTrusted = "SignatureNotTrusted"

// The values of Image.Signed besides a key's "key sha256:<hex>".
const (
	// SignedNone: the image was installed with no signature check.
	SignedNone = "unsigned"
	// SignedUnverified: the policy was optional and no trusted key's
	// signature verified.
	SignedUnverified = "unverified"
)

// SourceStatus is the state of providerd's index (mirror) of a source,
// which Find and Install read.
type SourceStatus struct {
	// Mode is how the index syncs: "feed" (catalogd's change feed) or
	// "crawl" (_catalog, tags/list and the manifests of a plain
	// registry); "" before the first sync.
	Mode string `json:"mode,omitempty"`
	// Entries is the number of images (versions) in the index.
	Entries int `json:"entries"`
	// Complete says that a whole sync has ended: the index holds every
	// image of the source as of LastSync.
	Complete bool `json:"complete"`
	// Syncing says that a sync is under way.
	Syncing  bool       `json:"syncing"`
	LastSync *time.Time `json:"lastSync,omitempty"`
	// LastError is the error of the last sync, if it failed.
	LastError string `json:"lastError,omitempty"`
	// Repositories and RepositoriesRead count, for a crawl, the
	// repositories listed by its current pass and those read so far.
	Repositories     int `json:"repositories,omitempty"`
	RepositoriesRead int `json:"repositoriesRead,omitempty"`
	// Origin is the mirror the index was read from while the source's
	// Location was unreachable; "" when it is the Location's.
	Origin string `json:"origin,omitempty"`
	// Warning says how the index falls short of the source (incomplete,
	// stale), as find prints it; "" when it does not.
	Warning string `json:"warning,omitempty"`
}

// VersionOptions are OneGet's version options, shared by Find, Install,
// Get and Remove.
type VersionOptions struct {
	RequiredVersion string `json:"requiredVersion,omitempty"`
	MinimumVersion  string `json:"minimumVersion,omitempty"`
	MaximumVersion  string `json:"maximumVersion,omitempty"`
	AllVersions     bool   `json:"allVersions,omitempty"`
}

// Image is an installed image, as Get-ContainerImage shows it.
type Image struct {
	Name        string     `json:"name"`
	Repository  string     `json:"repository"`
	Publisher   string     `json:"publisher,omitempty"`
	Version     string     `json:"version"`
	Description string     `json:"description,omitempty"`
	IsOSImage   bool       `json:"isOSImage"`
	ParentImage *ParentRef `json:"parentImage,omitempty"`
	// Size is the sum of the manifest, config and layer sizes.
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
	Installed time.Time `json:"installed"`
	// Digest is the manifest digest, the image's identity; ID is its hex.
	Digest string `json:"digest"`
	ID     string `json:"id"`
	Source string `json:"source,omitempty"`
	// Refs are the references that point at the image, e.g.
	// "nanoserver:10.0.10586.0" and "nanoserver:latest".
	Refs      []string `json:"refs,omitempty"`
	OSVersion string   `json:"os.version,omitempty"`
	// Signed is what verified the image when it was installed: "key
	// sha256:<hex>" (the trusted key whose signature verified; Publisher
	// is then the one the signature covers when it names one),
	// SignedUnverified or SignedNone.
	Signed string `json:"signed"`
}

// InstallRequest is the body of POST /v1/images/install.
type InstallRequest struct {
	Name string `json:"name"`
	VersionOptions
	// Source restricts the search to one source; empty searches all.
	Source string `json:"source,omitempty"`
	// Force reinstalls an installed image: every blob is verified again,
	// and missing or corrupt ones are downloaded again.
	Force bool `json:"force,omitempty"`
	// NoParents refuses to install missing parent images: the install then
	// fails with an error that names the missing parent.
	NoParents bool `json:"noParents,omitempty"`
}

// RemoveResult is the answer of DELETE /v1/images.
type RemoveResult struct {
	// Removed are the images removed; with WhatIf, those a removal would
	// remove.
	Removed []Image `json:"removed"`
	// WhatIf says that nothing was removed: ?whatIf=true asked for the
	// plan only.
	WhatIf bool `json:"whatIf,omitempty"`
	// BlobsDeleted and BytesFreed count what garbage collection freed.
	BlobsDeleted int   `json:"blobsDeleted"`
	BytesFreed   int64 `json:"bytesFreed"`
}

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// Job is a long operation that runs in providerd whether or not a client
// watches it.
type Job struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"` // "install"
	State   string         `json:"state"`
	Request InstallRequest `json:"request"`
	// Images are the images the job installs, parents first, as
	// "Name version", once resolved.
	Images []string `json:"images,omitempty"`
	// Blobs is the progress of every blob the job downloads.
	Blobs    []BlobProgress `json:"blobs,omitempty"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished,omitempty"`
	// Result is the installed image, when the job succeeded.
	Result *Image `json:"result,omitempty"`
	// Message is the closing sentence, e.g. "Downloaded in 0 hours, 0
	// minutes, 10 seconds."
	Message string `json:"message,omitempty"`
	Error   *Error `json:"error,omitempty"`
}

// BlobProgress is the progress of one blob of a job.
type BlobProgress struct {
	Digest string `json:"digest"`
	// Image names the image the blob belongs to, "Name version".
	Image string `json:"image,omitempty"`
	// Kind is "config" or "layer".
	Kind  string `json:"kind,omitempty"`
	Total int64  `json:"total"`
	Done  int64  `json:"done"`
	// State: "waiting", "downloading", "retrying" (an attempt failed:
	// Retry says why and when the next starts), "verifying", "done" or
	// "present" (already in the store).
	State string `json:"state"`
	// Retry is the last failed attempt of a blob that is retried; it
	// stays while the next attempt runs, and goes when the blob is done.
	Retry *BlobRetry `json:"retry,omitempty"`
}

// BlobRetry is a failed download attempt that is tried again.
type BlobRetry struct {
	// Attempt is the number of the next attempt, of at most Attempts in
	// a row that make no progress.
	Attempt  int `json:"attempt"`
	Attempts int `json:"attempts"`
	// Reason is the error of the failed attempt.
	Reason string `json:"reason"`
	// Next is when the next attempt starts.
	Next time.Time `json:"next"`
}

// Job event types.
const (
	EventState    = "state"    // the job's state changed
	EventProgress = "progress" // bytes of one blob
	EventLog      = "log"      // a line for people, e.g. "Installing parent WindowsServerCore"
	EventWarning  = "warning"  // a line for people about trouble the job works around, e.g. a retry
	EventResult   = "result"   // the last event: Job is final
)

// JobEvent is one line of the NDJSON stream of GET /v1/jobs/{id}/events and
// of POST /v1/images/install?follow=true. The stream starts with a state
// event carrying the whole Job, and ends with a result event.
type JobEvent struct {
	Type    string        `json:"type"`
	JobID   string        `json:"jobId"`
	Time    time.Time     `json:"time"`
	State   string        `json:"state,omitempty"`
	Blob    *BlobProgress `json:"blob,omitempty"`
	Message string        `json:"message,omitempty"`
	Job     *Job          `json:"job,omitempty"`
}

// Error is the v1 error envelope's body: {"error": {...}}. Code is the
// error class: InvalidArgument, NotFound, AlreadyExists, Conflict,
// FailedPrecondition, Unavailable, OutOfRange, TooLarge, Unauthenticated,
// PermissionDenied, NotImplemented or Internal.
type Error struct {
	Code string `json:"code"`
	// Message is the error's text without its class, which Code names:
	// "image \"x\" is not installed", not "...: not found".
	Message string `json:"message"`
	// ID, when set, is PackageManagement's resource name of the error
	// (its FullyQualifiedErrorId), e.g. "NoMatchFoundForCriteria", so
	// that each client can add the hint that fits it: cimage names
	// `cimage source list`, the PowerShell module Get-PackageSource.
	ID string `json:"id,omitempty"`
	// Dependents lists what blocks a removal (409), e.g.
	// "image microsoft/iis 1.0.0.0" or "container web1".
	Dependents []string `json:"dependents,omitempty"`
	// Matches lists the images that a removal by name selected, when it
	// selected several without force (409): nothing was removed.
	Matches []Image `json:"matches,omitempty"`
}

// ErrorResponse is the v1 error envelope.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string `json:"status"` // "ok"
	// Version of providerd.
	Version string `json:"version,omitempty"`
}

// SourcesResponse is the body of GET /v1/sources.
type SourcesResponse struct {
	Sources []Source `json:"sources"`
}

// ImagesResponse is the body of GET /v1/images.
type ImagesResponse struct {
	Images []Image `json:"images"`
}

// JobsResponse is the body of GET /v1/jobs.
type JobsResponse struct {
	Jobs []Job `json:"jobs"`
}

// The codes of the v1 error envelope: one per errdefs class, named after
// it, and CodeInternal for an error of no class.
const (
	CodeInvalidArgument     = "InvalidArgument"
	CodeNotFound            = "NotFound"
	CodeAlreadyExists       = "AlreadyExists"
	CodeConflict            = "Conflict"
	CodeFailedPrecondition  = "FailedPrecondition"
	CodeUnavailable         = "Unavailable"
	CodeOutOfRange          = "OutOfRange"
	CodeTooLarge            = "TooLarge"
	CodeUnauthenticated     = "Unauthenticated"
	CodePermissionDenied    = "PermissionDenied"
	CodeNotImplemented      = "NotImplemented"
	CodeInsufficientStorage = "InsufficientStorage"
	CodeTooManyRequests     = "TooManyRequests"
	CodeInternal            = "Internal"
)

// errorCodes pairs each code with its class. The server finds the code of
// an error by testing the classes in this order; the client finds the
// class of a code in the same table.
var errorCodes = []struct {
	code  string
	class error
}{
	{CodeInvalidArgument, errdefs.ErrInvalidArgument},
	{CodeNotFound, errdefs.ErrNotFound},
	{CodeAlreadyExists, errdefs.ErrAlreadyExists},
	{CodeConflict, errdefs.ErrConflict},
	{CodeFailedPrecondition, errdefs.ErrFailedPrecondition},
	{CodeOutOfRange, errdefs.ErrOutOfRange},
	{CodeTooLarge, errdefs.ErrTooLarge},
	{CodeUnauthenticated, errdefs.ErrUnauthenticated},
	{CodePermissionDenied, errdefs.ErrPermissionDenied},
	{CodeNotImplemented, errdefs.ErrNotImplemented},
	{CodeInsufficientStorage, errdefs.ErrInsufficientStorage},
	{CodeTooManyRequests, errdefs.ErrTooManyRequests},
	{CodeUnavailable, errdefs.ErrUnavailable},
}

// ErrorCode is the envelope code of err: the name of its errdefs class
// (a timeout is Unavailable, as errdefs.HTTPStatus has it), or
// CodeInternal.
func ErrorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.class) {
			return c.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeUnavailable
	}
	return CodeInternal
}

// NewError is the envelope body of err: its code, its message without
// the class and, when err carries one, its PackageManagement error id.
func NewError(err error) Error {
	e := Error{Code: ErrorCode(err), Message: ErrorMessage(err)}
	var ider interface{ ErrorID() string }
	if errors.As(err, &ider) {
		e.ID = ider.ErrorID()
	}
	return e
}

// ErrorMessage is err's text without the name of its class at the end:
// errors are classified by wrapping a class last ("image x: not found"),
// which helps code (errors.Is, the envelope's code) but reads as jargon.
// The class stays when it is all the text says.
func ErrorMessage(err error) string {
	msg := err.Error()
	for _, c := range errorCodes {
		if errors.Is(err, c.class) {
			if m, ok := strings.CutSuffix(msg, ": "+c.class.Error()); ok && m != "" {
				return m
			}
			break
		}
	}
	return msg
}

// ErrorClass is the errdefs class of an envelope code, nil for
// CodeInternal and for a code it does not know.
func ErrorClass(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.class
		}
	}
	return nil
}

// Container states. A container runs no process: start and stop only set
// its state.
const (
	ContainerCreated = "Created"
	ContainerRunning = "Running"
	ContainerStopped = "Stopped"
)

// Container is a container record: a writable directory on top of an
// installed image, from which New-ContainerImage builds a new image.
type Container struct {
	// ID is 64 hex; a unique prefix is accepted wherever an id is.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Image is the image the container was created from, "Name version";
	// ImageDigest its manifest digest.
	Image       string `json:"image"`
	ImageDigest string `json:"imageDigest"`
	// ParentImageName is the display name of that image, as
	// Get-Container showed it.
	ParentImageName string    `json:"parentImageName"`
	State           string    `json:"state"`
	Created         time.Time `json:"created"`
	// StateChanged is when start or stop last changed State; absent for
	// a container that was never started.
	StateChanged time.Time `json:"stateChanged,omitzero"`
}

// ContainerCreateRequest is the body of POST /v1/containers.
type ContainerCreateRequest struct {
	// Image names an installed image: "Name", "Name:version", a digest or
	// an id prefix.
	Image string `json:"image"`
	// Name must be unique; empty picks one.
	Name string `json:"name,omitempty"`
}

// CommitRequest is the body of POST /v1/images/commit (New-ContainerImage).
type CommitRequest struct {
	// Container is a container id, id prefix or name.
	Container string `json:"container"`
	Name      string `json:"name"`
	// Publisher is stored as "CN=<Publisher>" unless it starts with CN=.
	Publisher string `json:"publisher"`
	// Version is padded to four parts: 1.0 is 1.0.0.0.
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// Force replaces an image of the same name and version.
	Force bool `json:"force,omitempty"`
}

// SaveRequest is the body of POST /v1/images/save (Save-ContainerImage).
type SaveRequest struct {
	Name string `json:"name,omitempty"`
	VersionOptions
	// ID selects an installed image by digest or id prefix instead of Name.
	ID string `json:"id,omitempty"`
	// Source saves straight from this source without installing (OneGet's
	// Save-Package); empty saves the installed image, or, when it is not
	// installed, the image from the sources.
	Source string `json:"source,omitempty"`
	// Path, when set, is a file or directory on the daemon host to write
	// to; empty streams the archive back in the response.
	Path string `json:"path,omitempty"`
	// Force overwrites an existing file and creates a missing directory.
	Force bool `json:"force,omitempty"`
	// WhatIf plans the save and writes nothing (Save-ContainerImage
	// -WhatIf): the answer is a SaveResult with WhatIf set.
	WhatIf bool `json:"whatIf,omitempty"`
}

// SaveResult is the answer of a save to a path, or of a planned one.
type SaveResult struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	Image Image  `json:"image"`
	// WhatIf: nothing was written. Images are what the archive would
	// hold, "Name version", parents first; Path is req.Path as given, or
	// the file name that a streamed save proposes; Size is 0.
	WhatIf bool     `json:"whatIf,omitempty"`
	Images []string `json:"images,omitempty"`
}

// LoadResult is the answer of POST /v1/images/load (Install -Path).
type LoadResult struct {
	// Images are the images the archive installed, parents first.
	Images []Image `json:"images"`
}
