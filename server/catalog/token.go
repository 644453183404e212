package catalog

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// catalogd is its own token server, as Docker Hub, Harbor and ghcr.io
// are: the ping and the refused writes challenge with
//
//	WWW-Authenticate: Bearer realm="<catalogd>/token",service="catalogd"
//
// and GET /token (the distribution token protocol) or POST /token (its
// OAuth2 password grant) answers with a token: a user's when the request
// carries the user's Basic credentials, an anonymous one when it carries
// none. This is the challenge of the public registries, which the
// registry clients all follow: docker's and containerd's, containers/image,
// go-containerregistry, oras-go. A Basic challenge would serve
// containers/image as well, but docker's client answers it with "no basic
// auth credentials" when it has none, so it would stop anonymous pulls.
//
// Reads need no token. A write needs a user's token, or the user's Basic
// credentials directly.
const (
	tokenPath = "/token"
	// TokenService is the service of the challenge.
	TokenService = "catalogd"
	// DefaultTokenTTL is the lifetime of a token, Docker Hub's.
	DefaultTokenTTL = 5 * time.Minute
	// maxTokenSize bounds a token before any work on it.
	maxTokenSize = 4096
	// maxTokenForm bounds the body of POST /token.
	maxTokenForm = 16 << 10
)

// tokenMACLabel separates the MACs of tokens from any other use of the key.
const tokenMACLabel = "catalogd token v1\x00"

// tokenIssuer signs and checks tokens with a key that lives only in this
// process: a restart ends every token, and clients fetch new ones. It is
// safe for concurrent use.
type tokenIssuer struct {
	key [32]byte
	ttl time.Duration
	now func() time.Time
}

// tokenClaims is what a token says. Sub is "" for an anonymous token. FP
// is the fingerprint of the user's htpasswd entry when the token was
// issued (Htpasswd.fingerprint): a new password, or the user's removal,
// ends the user's tokens.
type tokenClaims struct {
	Sub string `json:"sub,omitempty"`
	FP  string `json:"fp,omitempty"`
	Exp int64  `json:"exp"`
}

func newTokenIssuer(ttl time.Duration) (*tokenIssuer, error) {
	ti := &tokenIssuer{ttl: ttl, now: time.Now}
	if _, err := rand.Read(ti.key[:]); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return ti, nil
}

// issue returns a token with claims c, expiring ttl from now, and the time
// it was issued.
func (ti *tokenIssuer) issue(c tokenClaims) (string, time.Time, error) {
	now := ti.now()
	c.Exp = now.Add(ti.ttl).Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("encoding a token: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(ti.mac(p)), now, nil
}

// verify returns the claims of token when this process issued it and it
// has not expired; otherwise an error of class errdefs.ErrUnauthenticated.
func (ti *tokenIssuer) verify(token string) (tokenClaims, error) {
	bad := fmt.Errorf("the bearer token is invalid or expired: fetch a new one from %s: %w", tokenPath, errdefs.ErrUnauthenticated)
	if len(token) > maxTokenSize {
		return tokenClaims{}, bad
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok {
		return tokenClaims{}, bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, ti.mac(p)) {
		return tokenClaims{}, bad
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return tokenClaims{}, bad
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || ti.now().Unix() >= c.Exp {
		return tokenClaims{}, bad
	}
	return c, nil
}

func (ti *tokenIssuer) mac(payload string) []byte {
	m := hmac.New(sha256.New, ti.key[:])
	m.Write([]byte(tokenMACLabel))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// ValidateTokenRealm checks the realm of WithTokenRealm: "" or an
// absolute http or https URL that can go into a header as it is; anything
// else is an error of class errdefs.ErrInvalidArgument.
func ValidateTokenRealm(realm string) error {
	if realm == "" {
		return nil
	}
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.ContainsAny(realm, "\"\\ \t\r\n") {
		return fmt.Errorf("token realm %q: not an absolute http or https URL: %w", realm, errdefs.ErrInvalidArgument)
	}
	return nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// tokenResponse is the body of a token: both field names of the token
// protocol, for the clients that read one or the other.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// token answers GET /token and POST /token. GET takes the user's Basic
// credentials, or none for an anonymous token; its query (service, scope,
// account, client_id) needs nothing and is not checked, since a user's
// token lets the user do everything the user may. POST is the OAuth2
// password grant (grant_type=password, username, password), which
// containerd tries first; any other grant is 400. Wrong credentials are
// 401 with a Basic challenge, and count against the client's limit on
// failed authentications like a refused write.
func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	user, pass, ok := basicCredentials(r)
	if r.Method == http.MethodPost {
		var err error
		if user, pass, err = passwordGrant(w, r); err != nil {
			return err
		}
		ok = true
	}
	var c tokenClaims
	if ok && s.opts.htpasswd != nil {
		if err := s.authenticate(w, r, user, pass); err != nil {
			return fmt.Errorf("token for %q: %w", user, err)
		}
		fp, known := s.opts.htpasswd.fingerprint(r.Context(), user)
		if !known {
			// Removed between the check and now.
			s.challenge(w, r, "")
			return fmt.Errorf("token for %q: the user is gone: %w", user, errdefs.ErrUnauthenticated)
		}
		c = tokenClaims{Sub: user, FP: hex.EncodeToString(fp[:])}
		middleware.AddFields(r.Context(), logrus.Fields{"user": user})
	}
	tok, issued, err := s.tokens.issue(c)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, r, http.StatusOK, "application/json", tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int64(s.tokens.ttl / time.Second),
		IssuedAt:    issued.UTC().Format(time.RFC3339),
	})
}

// passwordGrant reads the form of an OAuth2 password grant.
func passwordGrant(w http.ResponseWriter, r *http.Request) (user, pass string, err error) {
	if mt := trimMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return "", "", fmt.Errorf("POST %s: Content-Type %q, want application/x-www-form-urlencoded: %w", tokenPath, mt, errdefs.ErrInvalidArgument)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
	if err := r.ParseForm(); err != nil {
		class := errdefs.ErrInvalidArgument
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			class = errdefs.ErrTooLarge
		}
		return "", "", fmt.Errorf("POST %s: reading the form (at most %d bytes): %v: %w", tokenPath, maxTokenForm, err, class)
	}
	if g := r.PostForm.Get("grant_type"); g != "password" {
		return "", "", fmt.Errorf("POST %s: grant_type %q: only password is supported: %w", tokenPath, g, errdefs.ErrInvalidArgument)
	}
	user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
	if user == "" {
		return "", "", fmt.Errorf("POST %s: the password grant needs a username: %w", tokenPath, errdefs.ErrInvalidArgument)
	}
	return user, pass, nil
}

// bearerChallenge is the WWW-Authenticate value of a 401 from r: the
// token realm, the service, the scope of r's repository when it has one,
// and the error of a token that was refused.
func (s *Server) bearerChallenge(r *http.Request, tokenErr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Bearer realm=%q,service=%q`, s.tokenRealm(r), TokenService)
	if scope := s.scopeOf(r); scope != "" {
		fmt.Fprintf(&b, `,scope=%q`, scope)
	}
	if tokenErr != "" {
		fmt.Fprintf(&b, `,error=%q`, tokenErr)
	}
	return b.String()
}

// tokenRealm is WithTokenRealm's URL, or the token endpoint at the address
// the client used: the scheme of the connection and the Host of r, or the
// address that accepted the connection when the Host is not a plain host
// and port.
func (s *Server) tokenRealm(r *http.Request) string {
	if s.opts.tokenRealm != "" {
		return s.opts.tokenRealm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !plainHost(host) {
		host = ""
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			host = a.String()
		}
	}
	return scheme + "://" + host + tokenPath
}

// plainHost reports whether h is made of the characters of a host name,
// an IP address and a port only, so that it can go into a header as it is.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range []byte(h) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case bytes.IndexByte([]byte(".-:[]_%"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// scopeOf is the scope of the request r in the token protocol:
// repository:<name>:pull,push for a write to a repository,
// repository:<name>:delete for a delete, and "" for anything else or a
// name that is not valid.
func (s *Server) scopeOf(r *http.Request) string {
	if isRead(r) {
		return ""
	}
	var m mux.RouteMatch
	if !s.router.Match(r, &m) {
		return ""
	}
	name, ok := m.Vars[varName]
	if !ok || catalog.ValidateName(name) != nil {
		return ""
	}
	action := "pull,push"
	if r.Method == http.MethodDelete {
		action = "delete"
	}
	return "repository:" + name + ":" + action
}
