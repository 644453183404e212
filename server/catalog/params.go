package catalog

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
)

// repoName returns the {name} of r, validated (NAME_INVALID).
func repoName(r *http.Request) (string, error) {
	name := vars(r)[varName]
	if err := catalog.ValidateName(name); err != nil {
		return "", err
	}
	return name, nil
}

// parseDigest validates a digest: well formed, and sha256 or sha512
// (DIGEST_INVALID).
func parseDigest(s string) (digest.Digest, error) { return catalog.ParseDigest(s) }

// reference is a manifest reference: a tag or a digest.
type reference struct {
	tag    string
	digest digest.Digest
}

func (ref reference) String() string {
	if ref.digest != "" {
		return ref.digest.String()
	}
	return ref.tag
}

// parseReference validates the {reference} of a manifest route: a
// reference with a colon is a digest (DIGEST_INVALID), any other a tag
// (TAG_INVALID).
func parseReference(s string) (reference, error) {
	tag, d, err := catalog.ParseReference(s)
	if err != nil {
		return reference{}, err
	}
	return reference{tag: tag, digest: d}, nil
}

// pagination is the n and last of a list request; n < 0 means all.
type pagination struct {
	n    int
	last string
}

// parsePagination reads n and last. n must be a number >= 0; above
// maxPageSize it is lowered to it (the Link header then leads on).
func parsePagination(r *http.Request) (pagination, error) {
	q := r.URL.Query()
	p := pagination{n: -1, last: q.Get("last")}
	if s, ok := q["n"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 0 {
			return p, withCode(CodePaginationNumberInvalid, nil,
				fmt.Errorf("query parameter n=%q: must be a number >= 0: %w", s[0], errdefs.ErrInvalidArgument))
		}
		p.n = min(n, maxPageSize)
	}
	return p, nil
}

// fetch is the number of items to ask the store for: one more than the
// page, to know whether a next page exists.
func (p pagination) fetch() int {
	if p.n < 0 {
		return -1
	}
	return p.n + 1
}

// page cuts items to the page and reports whether more remain.
func (p pagination) page(items []string) ([]string, bool) {
	if p.n >= 0 && len(items) > p.n {
		return items[:p.n], true
	}
	return items, false
}

// setNextLink sets the Link header of the page after items, whose last
// item is the next page's last.
func setNextLink(w http.ResponseWriter, path string, n int, items []string) {
	if len(items) == 0 {
		return
	}
	last := items[len(items)-1]
	w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=%s>; rel="next"`, path, n, url.QueryEscape(last)))
}

// writeJSON writes v as the response body with status and content type.
// HEAD gets the headers only.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}
