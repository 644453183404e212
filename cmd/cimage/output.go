package main

import (
	"encoding/json"
	"flag"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// versionFlags are OneGet's version options as flags.
type versionFlags struct{ api.VersionOptions }

// register adds the flags to f, and to g the check of OneGet's rules
// (a version that parses, no -AllVersions with -RequiredVersion, ...),
// so that a bad combination is a usage error before any request.
func (v *versionFlags) register(f *flag.FlagSet, g *globals) {
	g.checks = append(g.checks, func() error {
		return find.Options{RequiredVersion: v.RequiredVersion, MinimumVersion: v.MinimumVersion,
			MaximumVersion: v.MaximumVersion, AllVersions: v.AllVersions}.Validate()
	})
	f.StringVar(&v.RequiredVersion, "required-version", "", "exactly this version (-RequiredVersion)")
	f.Var(stringAlias{&v.RequiredVersion}, "version", "the same as --required-version, as the reference's -Version")
	f.StringVar(&v.MinimumVersion, "minimum-version", "", "this version or newer (-MinimumVersion)")
	f.StringVar(&v.MaximumVersion, "maximum-version", "", "this version or older (-MaximumVersion)")
	f.BoolVar(&v.AllVersions, "all-versions", false, "every version, not only the latest (-AllVersions)")
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// stringAlias is a second name of a string flag.
type stringAlias struct{ p *string }

func (a stringAlias) String() string {
	if a.p == nil {
		return ""
	}
	return *a.p
}

func (a stringAlias) Set(s string) error {
	*a.p = s
	return nil
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// column is a column of a table: its header, the width it takes at least
// (the gap to the next column included), and the length past which its
// values are cut with "...", as PowerShell cuts them (0: never).
type column struct {
	header string
	width  int
	max    int
}

// formatTable lays rows out as PowerShell's Format-Table does: left
// aligned columns of the given widths, widened to fit their longest value
// with a gap of two, the headers underlined with dashes of their own
// length, no trailing spaces. No rows print nothing, as in PowerShell.
func formatTable(cols []column, rows [][]string) string {
	if len(rows) == 0 {
		return ""
	}
	cells := make([][]string, len(rows))
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = max(c.width, utf8.RuneCountInString(c.header)+2)
	}
	for r, row := range rows {
		cells[r] = make([]string, len(cols))
		for i, c := range cols {
			v := ""
			if i < len(row) {
				v = row[i]
			}
			v = truncate(strings.Join(strings.Fields(v), " "), c.max)
			cells[r][i] = v
			widths[i] = max(widths[i], utf8.RuneCountInString(v)+2)
		}
	}
	var b strings.Builder
	line := func(vals []string) {
		var l strings.Builder
		for i, v := range vals {
			l.WriteString(v)
			if i < len(vals)-1 {
				l.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(v)))
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	headers := make([]string, len(cols))
	dashes := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
		dashes[i] = strings.Repeat("-", utf8.RuneCountInString(c.header))
	}
	line(headers)
	line(dashes)
	for _, row := range cells {
		line(row)
	}
	return b.String()
}

// truncate cuts s to n runes, the last three "...", when it is longer.
func truncate(s string, n int) string {
	if n <= 3 || utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-3]) + "..."
}

// boolText is PowerShell's way of printing a boolean.
func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// shortDigest is the algorithm and the first 12 hex of a digest.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return truncate(d, 19)
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return alg + ":" + hex
}

// versionSuffix is describeVersions after a name, or "".
func versionSuffix(v api.VersionOptions) string {
	if d := describeVersions(v); d != "" {
		return " (" + d + ")"
	}
	return ""
}

// describeVersions writes version options as the cmdlets' parameters.
func describeVersions(v api.VersionOptions) string {
	var parts []string
	if v.RequiredVersion != "" {
		parts = append(parts, "-RequiredVersion "+v.RequiredVersion)
	}
	if v.MinimumVersion != "" {
		parts = append(parts, "-MinimumVersion "+v.MinimumVersion)
	}
	if v.MaximumVersion != "" {
		parts = append(parts, "-MaximumVersion "+v.MaximumVersion)
	}
	if v.AllVersions {
		parts = append(parts, "-AllVersions")
	}
	return strings.Join(parts, " ")
}
