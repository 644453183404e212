package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Token lifetimes.
const (
	// defaultTokenLifetime is the lifetime of a token whose answer has no
	// expires_in, as in the token specification.
	defaultTokenLifetime = 60 * time.Second
	// maxTokenMargin is the most a token is renewed ahead of its expiry.
	maxTokenMargin = 30 * time.Second
)

// challenge is one challenge of a WWW-Authenticate header.
type challenge struct {
	// scheme is lower case: "bearer", "basic".
	scheme string
	// params are keyed by lower-case name.
	params map[string]string
}

// authenticator answers a registry's challenges and keeps what it learnt:
// Bearer tokens by scope until shortly before they expire, and whether the
// registry takes Basic credentials, so that later requests send them at
// once. It is safe for concurrent use; concurrent requests for the token of
// one scope share one request to the token service.
type authenticator struct {
	c                  *Client
	username, password string
	now                func() time.Time

	mu       sync.Mutex
	tokens   map[string]bearerToken
	inflight map[string]*tokenCall
	basic    bool
}

type bearerToken struct {
	value string
	// renew is when the token stops being reused.
	renew time.Time
}

type tokenCall struct {
	done  chan struct{}
	token bearerToken
	err   error
}

func newAuthenticator(c *Client, username, password string) *authenticator {
	return &authenticator{
		c: c, username: username, password: password, now: time.Now,
		tokens: map[string]bearerToken{}, inflight: map[string]*tokenCall{},
	}
}

// authorize sets the Authorization header that the client already knows
// works for scope, if any, and returns it.
func (a *authenticator) authorize(req *http.Request, scope string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[scope]; ok && a.now().Before(t.renew) {
		req.Header.Set("Authorization", "Bearer "+t.value)
	} else if a.basic && a.username != "" {
		req.SetBasicAuth(a.username, a.password)
	}
	return req.Header.Get("Authorization")
}

// answer returns the Authorization header that answers challenges for a
// request of scope that was sent with Authorization sent. ok is false when
// there is nothing better to send than what was sent: the 401 stands.
func (a *authenticator) answer(ctx context.Context, challenges []challenge, scope, sent string) (authz string, ok bool, err error) {
	var bearer, basic *challenge
	for i := range challenges {
		switch ch := &challenges[i]; ch.scheme {
		case "bearer":
			if bearer == nil && ch.params["realm"] != "" {
				bearer = ch
			}
		case "basic":
			if basic == nil {
				basic = ch
			}
		}
	}
	switch {
	case bearer != nil:
		a.forget(scope, strings.TrimPrefix(sent, "Bearer "))
		t, err := a.token(ctx, *bearer, scope)
		if err != nil {
			return "", false, err
		}
		return "Bearer " + t.value, true, nil
	case basic != nil:
		if a.username == "" {
			return "", false, fmt.Errorf("source %s: the registry wants credentials (Basic realm %q) and the source has none: %w",
				a.c.name, basic.params["realm"], errdefs.ErrUnauthenticated)
		}
		a.mu.Lock()
		a.basic = true
		a.mu.Unlock()
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(a.username, a.password)
		authz = req.Header.Get("Authorization")
		if authz == sent {
			return "", false, nil // refused already
		}
		return authz, true, nil
	}
	return "", false, nil
}

// forget drops the token of scope if it is the one that was refused.
func (a *authenticator) forget(scope, refused string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.tokens[scope]; ok && t.value == refused {
		delete(a.tokens, scope)
	}
}

// token returns a token for scope: the cached one, the one a concurrent
// call is fetching, or a new one from the challenge's realm.
func (a *authenticator) token(ctx context.Context, ch challenge, scope string) (bearerToken, error) {
	// A shared fetch that failed because its caller's context ended is
	// tried again with ours; the bound keeps that finite.
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		if t, ok := a.tokens[scope]; ok && a.now().Before(t.renew) {
			a.mu.Unlock()
			return t, nil
		}
		if call, ok := a.inflight[scope]; ok {
			a.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return bearerToken{}, ctx.Err()
			}
			if call.err != nil && attempt < 3 && ctx.Err() == nil &&
				(errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)) {
				continue
			}
			return call.token, call.err
		}
		call := &tokenCall{done: make(chan struct{})}
		a.inflight[scope] = call
		a.mu.Unlock()

		call.token, call.err = a.fetch(ctx, ch, scope)

		a.mu.Lock()
		delete(a.inflight, scope)
		if call.err == nil {
			a.tokens[scope] = call.token
		}
		a.mu.Unlock()
		close(call.done)
		return call.token, call.err
	}
}

// tokenAnswer is the body of a token service's answer.
type tokenAnswer struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// fetch asks the token service of ch for a token of scope: the challenge's
// scope when it names one, else scope. The source's credentials, if any,
// go as Basic credentials.
func (a *authenticator) fetch(ctx context.Context, ch challenge, scope string) (bearerToken, error) {
	realm := ch.params["realm"]
	fail := func(err error) (bearerToken, error) {
		return bearerToken{}, fmt.Errorf("source %s: token service %s, scope %s: %w", a.c.name, realm, scope, err)
	}
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(fmt.Errorf("the challenge's realm is not an http or https URL: %w", errdefs.ErrUnavailable))
	}
	q := u.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	scopes := strings.Fields(ch.params["scope"])
	if len(scopes) == 0 {
		scopes = []string{scope}
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()

	req, err := a.c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(err)
	}
	if a.username != "" {
		req.SetBasicAuth(a.username, a.password)
	}
	start := a.now()
	resp, err := a.c.hc.Do(req)
	if err != nil {
		return fail(transportError(ctx, err))
	}
	if resp.StatusCode != http.StatusOK {
		serr := statusError(resp)
		if serr.Status == http.StatusUnauthorized || serr.Status == http.StatusForbidden {
			who := "anonymous access"
			if a.username != "" {
				who = fmt.Sprintf("the credentials of user %q", a.username)
			}
			return fail(fmt.Errorf("%s refused: %w", who, serr))
		}
		return fail(serr)
	}
	body, err := readLimited(resp.Body, maxTokenBody)
	_ = resp.Body.Close()
	if err != nil {
		return fail(transportError(ctx, err))
	}
	var ans tokenAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		return fail(fmt.Errorf("answer is not a token: %v: %w", err, errdefs.ErrUnavailable))
	}
	value := ans.Token
	if value == "" {
		value = ans.AccessToken
	}
	if value == "" {
		return fail(fmt.Errorf("answer holds no token: %w", errdefs.ErrUnavailable))
	}
	lifetime := defaultTokenLifetime
	if ans.ExpiresIn > 0 && ans.ExpiresIn < int64(365*24*time.Hour/time.Second) {
		lifetime = time.Duration(ans.ExpiresIn) * time.Second
	}
	return bearerToken{value: value, renew: start.Add(lifetime - min(lifetime/5, maxTokenMargin))}, nil
}

// parseChallenges parses the values of WWW-Authenticate headers (RFC 7235):
// each may hold several challenges, each a scheme and parameters whose
// values may be quoted strings with commas and escapes in them. A token68
// credential is skipped. Malformed parts are skipped rather than refused.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, v := range values {
		out = append(out, parseChallengeHeader(v)...)
	}
	return out
}

func parseChallengeHeader(s string) []challenge {
	var out []challenge
	p := &headerParser{s: s}
	for !p.end() {
		p.skip(" \t,")
		if p.end() {
			break
		}
		scheme := p.token()
		if scheme == "" {
			p.pos++ // a character that starts nothing
			continue
		}
		ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
		for {
			p.skip(" \t")
			mark := p.pos
			name := p.token()
			p.skip(" \t")
			if name == "" || p.end() || p.s[p.pos] != '=' {
				// The next challenge's scheme, or a token68.
				p.pos = mark
				if name != "" && !p.paramAhead() && len(ch.params) == 0 {
					p.pos = mark + len(name)
					p.skip("=") // token68 padding
				}
				break
			}
			p.pos++ // '='
			p.skip(" \t")
			var value string
			if !p.end() && p.s[p.pos] == '"' {
				value = p.quoted()
			} else if value = p.token(); value == "" {
				// "name=" and no value: the padding of a token68.
				p.skip("=")
				break
			}
			if _, dup := ch.params[strings.ToLower(name)]; !dup {
				ch.params[strings.ToLower(name)] = value
			}
			p.skip(" \t")
			if p.end() || p.s[p.pos] != ',' {
				break
			}
			p.pos++ // ','
			p.skip(" \t,")
			if !p.paramAhead() {
				break
			}
		}
		out = append(out, ch)
	}
	return out
}

type headerParser struct {
	s   string
	pos int
}

func (p *headerParser) end() bool { return p.pos >= len(p.s) }

func (p *headerParser) skip(chars string) {
	for !p.end() && strings.IndexByte(chars, p.s[p.pos]) >= 0 {
		p.pos++
	}
}

// token reads an RFC 7230 token.
func (p *headerParser) token() string {
	start := p.pos
	for !p.end() && isTokenChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// quoted reads a quoted string at p.pos, unescaping it. An unterminated one
// runs to the end.
func (p *headerParser) quoted() string {
	var b strings.Builder
	p.pos++ // opening quote
	for !p.end() {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '"':
			return b.String()
		case c == '\\' && !p.end():
			b.WriteByte(p.s[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// paramAhead reports whether a "name=" parameter starts at p.pos, without
// moving.
func (p *headerParser) paramAhead() bool {
	mark := p.pos
	defer func() { p.pos = mark }()
	if p.token() == "" {
		return false
	}
	p.skip(" \t")
	return !p.end() && p.s[p.pos] == '='
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
