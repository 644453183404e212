// Package client is the Go client of providerd's API v1.
//
//	c, err := client.New("http://127.0.0.1:5050", client.WithToken(token))
//	res, err := c.Find(ctx, client.FindOptions{Name: "Nano*"}) // res.Images, res.Warnings
//	stream, err := c.InstallFollow(ctx, api.InstallRequest{Name: "NanoServer"})
//	defer stream.Close()
//	for {
//		ev, err := stream.Next()
//		if err == io.EOF {
//			break // the result event was the last one
//		}
//		...
//	}
//
// Every method returns a *Error for an answer in the v1 error envelope. Its
// Unwrap gives the errdefs class of its code, so errors.Is(err,
// errdefs.ErrNotFound) works as on the server side. Other failures
// (connection refused, a body that does not decode) are returned as they
// are, wrapped with the call.
//
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// DefaultEndpoint is the unix socket of a providerd that runs as root
// (on Windows, its named pipe).
const DefaultEndpoint = defaultEndpoint

// maxResponseSize caps a JSON answer; a list of every job or image of a
// host is far below it.
const maxResponseSize = 64 << 20

// Opt sets an option of New.
type Opt func(*Client)

// WithToken sends `Authorization: Bearer <token>` with every request.
func WithToken(token string) Opt { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the default HTTP client. It should have no
// overall Timeout: event streams last as long as their job, and a
// context ends them instead.
func WithHTTPClient(hc *http.Client) Opt { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Opt { return func(c *Client) { c.userAgent = ua } }

// Client calls providerd's API v1 at one endpoint.
type Client struct {
	base      *url.URL
	endpoint  string
	hc        *http.Client
	token     string
	userAgent string
}

// New returns a client of the providerd at endpoint: unix:///path/to.sock
// (a unix socket, whose access is the credential), npipe:////./pipe/NAME
// (a Windows named pipe), or an http or https URL (a bare host:port is
// read as http://host:port), which needs WithToken. It fails with
// InvalidArgument on an endpoint that is none of these.
func New(endpoint string, opts ...Opt) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	if scheme, rest, _ := strings.Cut(endpoint, "://"); scheme == "unix" || scheme == "npipe" {
		return newLocal(endpoint, scheme, rest, opts)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %v: %w", endpoint, err, errdefs.ErrInvalidArgument)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("endpoint %q: want http://host:port or https://host:port: %w", endpoint, errdefs.ErrInvalidArgument)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, endpoint: u.String(), userAgent: "containerprovider-client"}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient((&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext, http.ProxyFromEnvironment)
	}
	return c, nil
}

// newLocal is New for a unix socket or a named pipe: requests go to
// http://providerd over connections dialed to it.
func newLocal(endpoint, scheme, path string, opts []Opt) (*Client, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("endpoint %q: want unix:///path/to/providerd.sock: %w", endpoint, errdefs.ErrInvalidArgument)
	}
	dial, err := localDialer(scheme, path)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %v: %w", endpoint, err, errdefs.ErrInvalidArgument)
	}
	c := &Client{base: &url.URL{Scheme: "http", Host: "providerd"}, endpoint: endpoint, userAgent: "containerprovider-client"}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(dial, nil)
	}
	return c, nil
}

// unixDialer dials the unix socket at path, whatever address it is asked
// for.
func unixDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", path)
	}
}

// Endpoint is the endpoint as given to New (an http URL without its
// trailing slash).
func (c *Client) Endpoint() string { return c.endpoint }

// defaultHTTPClient bounds connecting and the wait for response headers,
// but not the body: an event stream lasts as long as its job.
// A proxy applies to TCP endpoints only.
func defaultHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), proxy func(*http.Request) (*url.URL, error)) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 proxy,
		DialContext:           dial,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}}
}

// rawBody is a request body sent as it is, with its content type and, when
// known (>= 0), its length.
type rawBody struct {
	r           io.Reader
	contentType string
	size        int64
}

// request sends method path?query with body and returns the response when
// its status is one of ok; any other status is turned into a *Error and the
// body closed. body is nil, a rawBody, or a value encoded as JSON.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body any, ok ...int) (*http.Response, error) {
	// path is escaped already (pathEscape on its variable segments).
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %w", method, path, err, errdefs.ErrInvalidArgument)
	}
	u.Path = unescaped
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	contentType := ""
	size := int64(-1)
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, contentType, size = b.r, b.contentType, b.size
	default:
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if size >= 0 {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("providerd at %s: %w", c.base.Host, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// call sends a request and decodes a JSON answer of one of the statuses ok
// into out (nil: the body is discarded).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any, ok ...int) error {
	resp, err := c.request(ctx, method, path, query, body, ok...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseSize))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseSize)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }

// errNoSegment refuses an empty path segment, which would name another
// route.
func errNoSegment(what string) error {
	return fmt.Errorf("empty %s: %w", what, errdefs.ErrInvalidArgument)
}
