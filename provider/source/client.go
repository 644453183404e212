// Package source is the OCI Distribution client that providerd reads its
// sources with: catalogd's find extension when the source has it, the
// plain protocol (_catalog, tags/list, manifests) otherwise, verified
// manifests, and blobs resumed by HTTP Range. It follows the Bearer token
// and Basic challenges of real registries.
//
// Every call takes a context that bounds it; the http.Client's timeouts
// apply too. Errors carry an errdefs class and name the source, the
// repository and the manifest or blob concerned.
package source

import (
	// Register the hash functions of the accepted digest algorithms.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
)

// Defaults of the options.
const (
	DefaultUserAgent = "containerprovider"
)

// Limits.
const (
	// MaxManifestSize is the largest manifest Manifest reads, as catalogd
	// accepts.
	MaxManifestSize = model.DefaultMaxManifestSize
	// maxConfigSize bounds an image config read for its os.version, as in
	// catalogd.
	maxConfigSize = 1 << 20
	// maxErrorBody bounds how much of an error response is read for its
	// OCI error envelope.
	maxErrorBody = 64 << 10
	// maxFindBody bounds the answer of the find extension.
	maxFindBody = 64 << 20
	// maxListBody bounds one page of _catalog or tags/list.
	maxListBody = 8 << 20
	// maxTokenBody bounds a token service's answer.
	maxTokenBody = 1 << 20
	// maxListPages bounds the pages of one tags/list listing.
	maxListPages = 1000
	// defaultPageSize is the n asked of _catalog and tags/list.
	defaultPageSize = 1000
	// crawlConcurrency bounds the concurrent requests of a crawl.
	crawlConcurrency = 4
)

var sourceNameRegexp = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Opt sets an option of New.
type Opt func(*options)

type options struct {
	httpClient *http.Client
	userAgent  string
	logger     logrus.FieldLogger
}

// WithHTTPClient sets the HTTP client of every request (default: a client
// over a clone of http.DefaultTransport that waits at most a minute for
// response headers). Its timeouts apply on top of the contexts'. With an
// https source marked Insecure, its Transport must be an *http.Transport
// (or nil), which New clones.
func WithHTTPClient(hc *http.Client) Opt { return func(o *options) { o.httpClient = hc } }

// WithUserAgent sets the User-Agent of every request (default
// DefaultUserAgent).
func WithUserAgent(ua string) Opt { return func(o *options) { o.userAgent = ua } }

// WithLogger sets the logger of the client's debug and warning lines
// (default: logrus's standard logger).
func WithLogger(l logrus.FieldLogger) Opt { return func(o *options) { o.logger = l } }

// Client reads one source over the OCI Distribution protocol. It is safe for
// concurrent use.
type Client struct {
	name string
	base *url.URL
	hc   *http.Client
	ua   string
	log  logrus.FieldLogger
	auth *authenticator

	// syncSem (one slot, which a waiting context can leave) serializes
	// the syncs of the client's mirror.
	syncSem chan struct{}

	// pageSize is the n asked of _catalog and tags/list; tests lower it to
	// exercise pagination.
	pageSize int
}

// New returns the client of src. The source's name must be
// [A-Za-z0-9._-]{1,64} and its Location an http or https URL with a host,
// no query, fragment or user info; InvalidArgument otherwise. A Location
// path is a prefix of the /v2/ endpoints. Insecure skips TLS certificate
// verification of an https Location, on a clone of the client's transport.
// Username and Password are sent to the token service, or as Basic
// credentials when the registry asks for them.
func New(src api.Source, opts ...Opt) (*Client, error) {
	o := options{userAgent: DefaultUserAgent}
	for _, opt := range opts {
		opt(&o)
	}
	if !sourceNameRegexp.MatchString(src.Name) {
		return nil, fmt.Errorf("source name %q: must be 1 to 64 of [A-Za-z0-9._-]: %w", src.Name, errdefs.ErrInvalidArgument)
	}
	base, err := parseLocation(src.Location)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	hc := o.httpClient
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	if src.Insecure && base.Scheme == "https" {
		if hc, err = insecureClient(hc); err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
	}
	if o.logger == nil {
		o.logger = logrus.StandardLogger()
	}
	if o.userAgent == "" {
		o.userAgent = DefaultUserAgent
	}
	c := &Client{
		name:     src.Name,
		base:     base,
		hc:       hc,
		ua:       o.userAgent,
		log:      o.logger.WithField("source", src.Name),
		pageSize: defaultPageSize,
		syncSem:  make(chan struct{}, 1),
	}
	c.auth = newAuthenticator(c, src.Username, src.Password)
	return c, nil
}

// Name is the source's name.
func (c *Client) Name() string { return c.name }

func parseLocation(loc string) (*url.URL, error) {
	invalid := func(why string) error {
		return fmt.Errorf("location %q: %s: %w", loc, why, errdefs.ErrInvalidArgument)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, invalid(err.Error())
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalid("not an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, invalid("no host")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, invalid("a query is not allowed")
	case u.Fragment != "":
		return nil, invalid("a fragment is not allowed")
	case u.User != nil:
		return nil, invalid("credentials belong in the source's username and password, not in its location")
	case u.Opaque != "":
		return nil, invalid("not a hierarchical URL")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(u.Path, "/")}, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return t
}

// insecureClient copies hc with a clone of its transport that skips TLS
// certificate verification.
func insecureClient(hc *http.Client) (*http.Client, error) {
	var t *http.Transport
	switch rt := hc.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return nil, fmt.Errorf("insecure source: the HTTP client's transport is a %T, not an *http.Transport: %w", rt, errdefs.ErrInvalidArgument)
	}
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the source is marked Insecure by its administrator
	cp := *hc
	cp.Transport = t
	return &cp, nil
}

// endpoint is the URL of path (which starts with /v2/) with query q.
func (c *Client) endpoint(path string, q url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return &u
}

// Scopes of the token service.
const catalogScope = "registry:catalog:*"

func pullScope(repo string) string { return "repository:" + repo + ":pull" }
