package find

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// NormalizeVersion returns v as four numeric parts, as New-ContainerImage
// records it: "1.0" becomes "1.0.0.0" and "10.0.14393" becomes
// "10.0.14393.0". Each part is a decimal number from 0 to 2147483647 (a
// .NET System.Version component); leading zeros are dropped. Anything else
// (an empty string, a letter, a sign, an empty part, more than four parts)
// is an errdefs.ErrInvalidArgument error.
func NormalizeVersion(v string) (string, error) {
	s := strings.TrimSpace(v)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("version %q: %s: %w", v, why, errdefs.ErrInvalidArgument)
	}
	if s == "" {
		return bad("empty")
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return bad("more than four parts")
	}
	out := make([]string, 4)
	for i := range out {
		if i >= len(parts) {
			out[i] = "0"
			continue
		}
		p := parts[i]
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return bad("each part must be a decimal number")
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || n > math.MaxInt32 {
			return bad("a part is larger than 2147483647")
		}
		out[i] = strconv.FormatUint(n, 10)
	}
	return strings.Join(out, "."), nil
}

// MaxPublisherLength bounds a publisher name, CN= included.
const MaxPublisherLength = 256

// NormalizePublisher returns the publisher as "CN=<publisher>", as
// New-ContainerImage -Publisher Demo records "CN=Demo". A value that already
// starts with "CN=" (in any case) is kept as it is. Surrounding white space
// is trimmed. An empty name, a control character or a value longer than
// MaxPublisherLength is an errdefs.ErrInvalidArgument error.
func NormalizePublisher(p string) (string, error) {
	s := strings.TrimSpace(p)
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("publisher %q: %s: %w", p, why, errdefs.ErrInvalidArgument)
	}
	if len(s) >= 3 && strings.EqualFold(s[:3], "CN=") {
		if strings.TrimSpace(s[3:]) == "" {
			return bad("empty")
		}
	} else {
		s = "CN=" + s
	}
	if s == "CN=" {
		return bad("empty")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return bad("control character")
	}
	if len(s) > MaxPublisherLength {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPublisherLength))
	}
	return s, nil
}
