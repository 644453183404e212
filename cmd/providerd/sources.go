package main

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// sourcesVar registers a repeatable NAME=URL flag. Its environment
// variable holds a comma-separated list. The first use on the command line
// replaces the default (from the environment or def) rather than adding to
// it.
func sourcesVar(f *cli.FlagSet, p *[]api.Source, name string, def []api.Source, usage string) {
	*p = def
	f.Var(&sourcesValue{list: p}, name, "`NAME=URL[,trusted][,mirror=URL2]...`: "+usage)
}

// sourcesValue is the value of a repeatable NAME=URL flag; its
// environment variable is a comma-separated list.
type sourcesValue struct {
	list *[]api.Source
	set  bool // the command line gave one already
}

func (v *sourcesValue) String() string {
	if v == nil || v.list == nil {
		return ""
	}
	parts := make([]string, 0, len(*v.list))
	for _, s := range *v.list {
		parts = append(parts, s.Name+"="+s.Location)
		if s.Trusted {
			parts = append(parts, "trusted")
		}
		for _, m := range s.Mirrors {
			parts = append(parts, "mirror="+m.Location)
		}
	}
	return strings.Join(parts, ",")
}

func (v *sourcesValue) Set(s string) error {
	src, err := parseSource(s)
	if err != nil {
		return err
	}
	if !v.set {
		*v.list, v.set = nil, true
	}
	for _, have := range *v.list {
		if strings.EqualFold(have.Name, src.Name) {
			return fmt.Errorf("source %q given twice", src.Name)
		}
	}
	*v.list = append(*v.list, src)
	return nil
}

// SetEnv reads the comma-separated list of the environment variable, with
// an error for each item that does not parse; a mirror=URL or trusted item
// is an option of the source before it.
func (v *sourcesValue) SetEnv(s string) error {
	var list []api.Source
	var errs []error
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		if isSourceOption(item) {
			if len(list) == 0 {
				errs = append(errs, fmt.Errorf("%q: an option comes after its source's NAME=URL", item))
				continue
			}
			if err := sourceOption(&list[len(list)-1], item); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		src, err := parseSource(item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		list = append(list, src)
	}
	*v.list = list
	return errors.Join(errs...)
}

// sourceName is what the provider accepts as a source name.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// parseSource reads NAME=URL[,trusted][,mirror=URL2]..., each URL an http
// or https base URL.
func parseSource(s string) (api.Source, error) {
	first, rest, _ := strings.Cut(s, ",")
	src, err := parseNameURL(first)
	if err != nil {
		return api.Source{}, err
	}
	if rest == "" {
		return src, nil
	}
	for _, opt := range strings.Split(rest, ",") {
		if err := sourceOption(&src, strings.TrimSpace(opt)); err != nil {
			return api.Source{}, err
		}
	}
	return src, nil
}

// isSourceOption reports whether item, of the environment variable's list,
// is an option of the source before it rather than a NAME=URL.
func isSourceOption(item string) bool {
	return strings.HasPrefix(item, "mirror=") || item == "trusted"
}

// sourceOption applies opt, an option after a source's NAME=URL, to src:
// mirror=URL adds a mirror; trusted marks the source as one whose packages
// PackageManagement installs without asking.
func sourceOption(src *api.Source, opt string) error {
	if m, ok := strings.CutPrefix(opt, "mirror="); ok {
		return addMirror(src, m)
	}
	if opt != "trusted" {
		return fmt.Errorf("source %s: option %q: want trusted or mirror=URL", src.Name, opt)
	}
	if src.Trusted {
		return fmt.Errorf("source %s: trusted given twice", src.Name)
	}
	src.Trusted = true
	return nil
}

// addMirror adds the mirror at loc to src; the mirror has both
// capabilities and no credentials (cimage source add sets those).
func addMirror(src *api.Source, loc string) error {
	if !httpURL(loc) {
		return fmt.Errorf("source %s: mirror %q: the URL must be http://host[:port] or https://host[:port]", src.Name, loc)
	}
	src.Mirrors = append(src.Mirrors, api.SourceMirror{Location: strings.TrimSuffix(loc, "/")})
	return nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// parseNameURL reads NAME=URL.
func parseNameURL(s string) (api.Source, error) {
	name, loc, ok := strings.Cut(s, "=")
	if !ok {
		return api.Source{}, fmt.Errorf("source %q: want NAME=URL", s)
	}
	if !sourceName.MatchString(name) {
		return api.Source{}, fmt.Errorf("source %q: the name must be 1 to 64 of A-Z a-z 0-9 . _ -", s)
	}
	if !httpURL(loc) {
		return api.Source{}, fmt.Errorf("source %q: the URL must be http://host[:port] or https://host[:port]", s)
	}
	return api.Source{Name: name, Location: strings.TrimSuffix(loc, "/")}, nil
}
