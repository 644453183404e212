package find

import "strings"

// pattern is a case-insensitive name pattern with the wildcards * and ?.
// Every other character is literal: there are no character classes and no
// escapes, and '/' is an ordinary character (unlike path.Match).
type pattern struct {
	all  bool   // empty pattern: matches everything
	wild bool   // holds * or ?
	p    []rune // lower-cased
}

func newPattern(s string) pattern {
	return pattern{
		all:  s == "",
		wild: strings.ContainsAny(s, "*?"),
		p:    []rune(strings.ToLower(s)),
	}
}

// HasWildcard reports whether name holds the wildcard characters * or ?.
func HasWildcard(name string) bool { return strings.ContainsAny(name, "*?") }

// MatchName reports whether name matches pattern case-insensitively, where
// * matches any run of characters, ? any one character, and every other
// character itself.
func MatchName(pat, name string) bool { return newPattern(pat).match(name) }

// match runs in O(len(p)*len(s)) at worst: on a mismatch it backtracks only
// to the last star, which is enough because a later star can absorb
// anything an earlier one could.
func (p pattern) match(name string) bool {
	if p.all {
		return true
	}
	s := []rune(strings.ToLower(name))
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p.p) && (p.p[pi] == '?' || p.p[pi] == s[si]):
			pi++
			si++
		case pi < len(p.p) && p.p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p.p) && p.p[pi] == '*' {
		pi++
	}
	return pi == len(p.p)
}
