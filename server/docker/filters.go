package docker

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// filters is the JSON `filters` query parameter: each key with its values,
// sent as {"key":{"value":true}} or, by old clients, {"key":["value"]}.
type filters map[string][]string

// parseFilters reads the filters of r and refuses the keys outside
// supported (400 with the daemon's wording), and the keys of known but
// unsupported Docker filters (501).
func parseFilters(r *http.Request, supported, known []string) (filters, error) {
	raw := r.URL.Query().Get("filters")
	out := filters{}
	if raw == "" {
		return out, nil
	}
	var asMap map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &asMap); err == nil {
		for k, vals := range asMap {
			for v, on := range vals {
				if on {
					out[k] = append(out[k], v)
				}
			}
		}
	} else {
		var asList map[string][]string
		if err := json.Unmarshal([]byte(raw), &asList); err != nil {
			return nil, newError(errdefs.ErrInvalidArgument, "invalid filter: %v", err)
		}
		for k, vals := range asList {
			out[k] = append(out[k], vals...)
		}
	}
	for k := range out {
		if slices.Contains(known, k) && !slices.Contains(supported, k) {
			return nil, newError(errdefs.ErrNotImplemented, "filter '%s' is not supported by providerd", k)
		}
		if !slices.Contains(supported, k) {
			return nil, newError(errdefs.ErrInvalidArgument, "invalid filter '%s'", k)
		}
		slices.Sort(out[k])
	}
	return out, nil
}

// boolFilter reads a true/false filter; ok is false when it is absent.
func (f filters) boolFilter(key string) (value, ok bool, err error) {
	vals := f[key]
	if len(vals) == 0 {
		return false, false, nil
	}
	for _, v := range vals {
		switch v {
		case "true", "1":
			value = true
		case "false", "0":
		default:
			return false, false, newError(errdefs.ErrInvalidArgument, "invalid filter '%s=%s'", key, v)
		}
	}
	if len(vals) > 1 && !allSame(vals) {
		return false, false, newError(errdefs.ErrInvalidArgument, "invalid filter '%s': conflicting values", key)
	}
	return value, true, nil
}

func allSame(vals []string) bool {
	norm := func(v string) bool { return v == "true" || v == "1" }
	for _, v := range vals[1:] {
		if norm(v) != norm(vals[0]) {
			return false
		}
	}
	return true
}
