package cli

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/containerprovider/containerprovider/api"
)

// MirrorSyntax is the syntax of a mirror on the command line.
const MirrorSyntax = "URL[,insecure][,username=U,password-file=F][,namespace=NS][,capabilities=pull+resolve]"

// MirrorSpec is a mirror as the command line gives it; PasswordFile is
// read by the command, as the user who runs it, into Mirror.Password.
type MirrorSpec struct {
	Mirror       api.SourceMirror
	PasswordFile string
}

// ParseMirror reads a mirror of MirrorSyntax: its http or https URL, then
// comma-separated options. Capabilities are joined by '+' (a ',' would end
// the option); without them the mirror has both, pull and resolve (pull
// alone with a namespace).
func ParseMirror(s string) (MirrorSpec, error) {
	parts := strings.Split(s, ",")
	loc := strings.TrimSpace(parts[0])
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return MirrorSpec{}, Usagef("mirror %q: want %s, the URL http://host[:port] or https://host[:port] (credentials go in username= and password-file=)", s, MirrorSyntax)
	}
	spec := MirrorSpec{Mirror: api.SourceMirror{Location: strings.TrimSuffix(loc, "/")}}
	seen := map[string]bool{}
	for _, opt := range parts[1:] {
		key, value, hasValue := strings.Cut(strings.TrimSpace(opt), "=")
		if seen[key] {
			return MirrorSpec{}, Usagef("mirror %q: %s given twice", s, key)
		}
		seen[key] = true
		switch {
		case key == "insecure" && !hasValue:
			spec.Mirror.Insecure = true
		case key == "username" && value != "":
			spec.Mirror.Username = value
		case key == "password-file" && value != "":
			spec.PasswordFile = value
		case key == "namespace" && value != "":
			spec.Mirror.Namespace = value
		case key == "capabilities" && value != "":
			for _, c := range strings.Split(value, "+") {
				if c != api.MirrorPull && c != api.MirrorResolve {
					return MirrorSpec{}, Usagef("mirror %q: capability %q: want %s or %s", s, c, api.MirrorPull, api.MirrorResolve)
				}
				spec.Mirror.Capabilities = append(spec.Mirror.Capabilities, c)
			}
		default:
			return MirrorSpec{}, Usagef("mirror %q: option %q: want insecure, username=U, password-file=F, namespace=NS or capabilities=pull+resolve", s, opt)
		}
	}
	if (spec.Mirror.Username == "") != (spec.PasswordFile == "") {
		return MirrorSpec{}, Usagef("mirror %q: username= and password-file= go together", s)
	}
	return spec, nil
}

// MirrorString is m in MirrorSyntax, without its password.
func MirrorString(m api.SourceMirror) string {
	var b strings.Builder
	b.WriteString(m.Location)
	if m.Insecure {
		b.WriteString(",insecure")
	}
	if m.Username != "" {
		fmt.Fprintf(&b, ",username=%s", m.Username)
	}
	if m.Namespace != "" {
		fmt.Fprintf(&b, ",namespace=%s", m.Namespace)
	}
	if len(m.Capabilities) > 0 {
		fmt.Fprintf(&b, ",capabilities=%s", strings.Join(m.Capabilities, "+"))
	}
	return b.String()
}
