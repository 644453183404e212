package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// get sends a GET of u with the extra header hdr, with the credentials the
// client holds for scope. A 401 with a challenge it can answer (a Bearer
// token, Basic credentials) is answered and the request sent once more.
// The response may have any status; the caller closes its body. A
// transport error is of class Unavailable, unless ctx ended.
func (c *Client) get(ctx context.Context, u *url.URL, scope string, hdr http.Header) (*http.Response, error) {
	return c.send(ctx, http.MethodGet, u, scope, hdr)
}

// send is get with another method (HEAD).
func (c *Client) send(ctx context.Context, method string, u *url.URL, scope string, hdr http.Header) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, u, hdr)
	if err != nil {
		return nil, err
	}
	sent := c.auth.authorize(req, scope)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return resp, nil
	}
	authz, ok, err := c.auth.answer(ctx, parseChallenges(resp.Header.Values("WWW-Authenticate")), scope, sent)
	if err != nil || !ok {
		if err != nil {
			drain(resp)
			return nil, err
		}
		// No challenge this client can answer: the 401 is the answer.
		return resp, nil
	}
	drain(resp)
	if req, err = c.newRequest(ctx, method, u, hdr); err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", authz)
	resp, err = c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return resp, nil
}

func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, hdr http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", u.Redacted(), err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", c.ua)
	return req, nil
}

// drain reads a little of a response body that is no longer needed, so that
// the connection can be reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// readLimited reads r whole, at most max bytes; more is a TooLarge error.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge(max)
	}
	return b, nil
}
