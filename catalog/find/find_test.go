package find

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantID  string
		wantMsg string
	}{
		{name: "no options", opts: Options{}},
		{name: "name only", opts: Options{Name: "nano*"}},
		{name: "required only", opts: Options{RequiredVersion: "10.0.14393.0"}},
		{name: "min only", opts: Options{MinimumVersion: "10.0.14393.0"}},
		{name: "max only", opts: Options{MaximumVersion: "10.0.14393.0"}},
		{name: "min equals max", opts: Options{MinimumVersion: "10.0.14393.0", MaximumVersion: "10.0.14393"}},
		{name: "min below max", opts: Options{MinimumVersion: "10.0.10586.0", MaximumVersion: "10.0.14393.0"}},
		{name: "all versions", opts: Options{AllVersions: true}},
		{name: "all versions with min and max", opts: Options{AllVersions: true, MinimumVersion: "1.0", MaximumVersion: "2.0"}},
		{name: "white space is not given", opts: Options{RequiredVersion: "  ", MinimumVersion: "1.0", AllVersions: true}},
		{
			name:    "required with min",
			opts:    Options{RequiredVersion: "10.0.14393.0", MinimumVersion: "10.0.10586.0"},
			wantID:  IDVersionRangeAndRequiredVersionCannotBeSpecifiedTogether,
			wantMsg: "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command.",
		},
		{
			name:    "required with max",
			opts:    Options{RequiredVersion: "10.0.14393.0", MaximumVersion: "10.0.20000.0"},
			wantID:  IDVersionRangeAndRequiredVersionCannotBeSpecifiedTogether,
			wantMsg: "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command.",
		},
		{
			name:    "all versions with required",
			opts:    Options{RequiredVersion: "10.0.14393.0", AllVersions: true},
			wantID:  IDAllVersionsCannotBeUsedWithOtherVersionParameters,
			wantMsg: "You cannot use the parameters AllVersions and RequiredVersion in the same command.",
		},
		{
			name:    "all versions with required and min reports all versions first",
			opts:    Options{RequiredVersion: "1.0", MinimumVersion: "1.0", AllVersions: true},
			wantID:  IDAllVersionsCannotBeUsedWithOtherVersionParameters,
			wantMsg: "You cannot use the parameters AllVersions and RequiredVersion in the same command.",
		},
		{
			name:    "min greater than max",
			opts:    Options{MinimumVersion: "10.0.14393.0", MaximumVersion: "10.0.10586.0"},
			wantID:  IDMinimumVersionMustBeLessThanMaximumVersion,
			wantMsg: "The specified MinimumVersion '10.0.14393.0' is greater than the specified MaximumVersion '10.0.10586.0'",
		},
		{
			name:    "min greater than max with all versions",
			opts:    Options{AllVersions: true, MinimumVersion: "2.0", MaximumVersion: "1.0"},
			wantID:  IDMinimumVersionMustBeLessThanMaximumVersion,
			wantMsg: "The specified MinimumVersion '2.0' is greater than the specified MaximumVersion '1.0'",
		},
		{
			name:    "bad required version",
			opts:    Options{RequiredVersion: "ten"},
			wantID:  IDInvalidVersion,
			wantMsg: "The specified version 'ten' is invalid. Error: 'malformed version: ten'.",
		},
		{
			name:    "bad minimum version",
			opts:    Options{MinimumVersion: "1..2"},
			wantID:  IDInvalidVersion,
			wantMsg: "The specified version '1..2' is invalid. Error: 'malformed version: 1..2'.",
		},
		{
			name:    "bad maximum version",
			opts:    Options{MaximumVersion: "latest"},
			wantID:  IDInvalidVersion,
			wantMsg: "The specified version 'latest' is invalid. Error: 'malformed version: latest'.",
		},
		{
			name:    "bad version is reported before combination rules",
			opts:    Options{RequiredVersion: "1.0", MinimumVersion: "x"},
			wantID:  IDInvalidVersion,
			wantMsg: "The specified version 'x' is invalid. Error: 'malformed version: x'.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.wantID == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v (%T), want *Error", err, err)
			}
			if fe.ID != tt.wantID {
				t.Errorf("ID = %q, want %q", fe.ID, tt.wantID)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message = %q, want %q", err.Error(), tt.wantMsg)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("class: %v is not InvalidArgument", err)
			}
			// Filter applies the same rules before anything else.
			if _, ferr := Filter(testEntries, tt.opts); ferr == nil || ferr.Error() != tt.wantMsg {
				t.Errorf("Filter error = %v, want %q", ferr, tt.wantMsg)
			}
		})
	}
}

var created = time.Date(2016, 10, 12, 0, 0, 0, 0, time.UTC)

func entry(name, repo, version string) api.FindEntry {
	return api.FindEntry{Name: name, Repository: repo, Version: version, Digest: "sha256:" + repo + "-" + version, Created: created}
}

var testEntries = []api.FindEntry{
	entry("WindowsServerCore", "windowsservercore", "10.0.14393.0"),
	entry("NanoServer", "nanoserver", "10.0.14393.0"),
	entry("NanoServer", "nanoserver", "10.0.10586.0"),
	entry("WindowsServerCore", "windowsservercore", "10.0.10586.0"),
	entry("microsoft/iis", "microsoft/iis", "1.0.0.0"),
	entry("microsoft/aspnet", "microsoft/aspnet", "1.0.0.0"),
	entry("DemoImage", "demoimage", "1.0.0.0"),
	entry("DemoImage", "demoimage", "1.0.0.10"),
	entry("DemoImage", "demoimage", "1.0.0.9"),
	entry("crane-pushed", "crane-pushed", "stable"),
	entry("crane-pushed", "crane-pushed", "edge"),
}

// ids renders entries as "Name@Version" for compact comparisons.
func ids(es []api.FindEntry) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Name + "@" + e.Version
	}
	return strings.Join(s, " ")
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{
			name: "no options gives the latest of each name sorted by name",
			want: "crane-pushed@edge crane-pushed@stable DemoImage@1.0.0.10 microsoft/aspnet@1.0.0.0 microsoft/iis@1.0.0.0 NanoServer@10.0.14393.0 WindowsServerCore@10.0.14393.0",
		},
		{
			name: "star is everything",
			opts: Options{Name: "*"},
			want: "crane-pushed@edge crane-pushed@stable DemoImage@1.0.0.10 microsoft/aspnet@1.0.0.0 microsoft/iis@1.0.0.0 NanoServer@10.0.14393.0 WindowsServerCore@10.0.14393.0",
		},
		{name: "exact name, other case", opts: Options{Name: "nanoserver"}, want: "NanoServer@10.0.14393.0"},
		{name: "exact name, upper case", opts: Options{Name: "NANOSERVER"}, want: "NanoServer@10.0.14393.0"},
		{name: "prefix wildcard", opts: Options{Name: "nano*"}, want: "NanoServer@10.0.14393.0"},
		{name: "suffix wildcard mixed case", opts: Options{Name: "*SERVERcore"}, want: "WindowsServerCore@10.0.14393.0"},
		{name: "infix wildcard", opts: Options{Name: "*Server*"}, want: "NanoServer@10.0.14393.0 WindowsServerCore@10.0.14393.0"},
		{name: "question mark is one character", opts: Options{Name: "?anoServer"}, want: "NanoServer@10.0.14393.0"},
		{name: "question mark is not zero characters", opts: Options{Name: "?NanoServer"}, want: ""},
		{name: "slash is literal and matched by star", opts: Options{Name: "microsoft/*"}, want: "microsoft/aspnet@1.0.0.0 microsoft/iis@1.0.0.0"},
		{name: "star crosses slashes", opts: Options{Name: "*iis"}, want: "microsoft/iis@1.0.0.0"},
		{name: "brackets are literal", opts: Options{Name: "[n]anoserver*"}, want: ""},
		{name: "name matches the repository", opts: Options{Name: "windowsservercore"}, want: "WindowsServerCore@10.0.14393.0"},
		{name: "name is trimmed", opts: Options{Name: "  NanoServer "}, want: "NanoServer@10.0.14393.0"},
		{
			name: "numeric latest, not lexical",
			opts: Options{Name: "DemoImage"},
			want: "DemoImage@1.0.0.10",
		},
		{
			name: "all versions ascending",
			opts: Options{Name: "DemoImage", AllVersions: true},
			want: "DemoImage@1.0.0.0 DemoImage@1.0.0.9 DemoImage@1.0.0.10",
		},
		{
			name: "all versions drops unparseable versions",
			opts: Options{AllVersions: true, Name: "crane*"},
			want: "crane-pushed@edge crane-pushed@stable",
		},
		{
			name: "required version",
			opts: Options{Name: "NanoServer", RequiredVersion: "10.0.10586.0"},
			want: "NanoServer@10.0.10586.0",
		},
		{
			name: "required version compares numerically",
			opts: Options{Name: "NanoServer", RequiredVersion: "10.0.10586"},
			want: "NanoServer@10.0.10586.0",
		},
		{
			name: "required version across names",
			opts: Options{RequiredVersion: "10.0.10586.0"},
			want: "NanoServer@10.0.10586.0 WindowsServerCore@10.0.10586.0",
		},
		{
			name: "minimum version is inclusive",
			opts: Options{MinimumVersion: "10.0.14393.0"},
			want: "NanoServer@10.0.14393.0 WindowsServerCore@10.0.14393.0",
		},
		{
			name: "maximum version is inclusive and gives the latest below it",
			opts: Options{Name: "*server*", MaximumVersion: "10.0.10586.0"},
			want: "NanoServer@10.0.10586.0 WindowsServerCore@10.0.10586.0",
		},
		{
			name: "min and max",
			opts: Options{Name: "DemoImage", MinimumVersion: "1.0.0.1", MaximumVersion: "1.0.0.9"},
			want: "DemoImage@1.0.0.9",
		},
		{
			name: "all versions within bounds",
			opts: Options{Name: "DemoImage", AllVersions: true, MinimumVersion: "1.0.0.9"},
			want: "DemoImage@1.0.0.9 DemoImage@1.0.0.10",
		},
		{
			name: "all versions within both bounds",
			opts: Options{AllVersions: true, MinimumVersion: "10.0.10586.0", MaximumVersion: "10.0.10586.0"},
			want: "NanoServer@10.0.10586.0 WindowsServerCore@10.0.10586.0",
		},
		{
			name: "version option drops unparseable versions",
			opts: Options{Name: "crane*", MinimumVersion: "0.0"},
			want: "",
		},
		{name: "wildcard without match is empty, no error", opts: Options{Name: "nothing*"}, want: ""},
		{name: "wildcard with min beyond everything is empty", opts: Options{Name: "*", MinimumVersion: "99.0"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]api.FindEntry(nil), testEntries...)
			got, err := Filter(in, tt.opts)
			if err != nil {
				t.Fatalf("Filter() error = %v", err)
			}
			if got == nil {
				t.Fatal("Filter() = nil, want a non-nil slice")
			}
			if ids(got) != tt.want {
				t.Errorf("Filter() =\n  %s\nwant\n  %s", ids(got), tt.want)
			}
			if ids(in) != ids(testEntries) {
				t.Errorf("Filter modified its input")
			}
		})
	}
}

func TestFilterNotFound(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{
			name: "unknown exact name",
			opts: Options{Name: "NoSuchImage"},
			want: "No match was found for the specified search criteria and package name 'NoSuchImage'.",
		},
		{
			name: "unknown required version",
			opts: Options{Name: "NanoServer", RequiredVersion: "10.0.99999.0"},
			want: "No match was found for the specified search criteria and package name 'NanoServer'." +
				" RequiredVersion '10.0.99999.0' was not found.",
		},
		{
			name: "unknown required version with a wildcard name",
			opts: Options{Name: "nano*", RequiredVersion: "1.2.3.4"},
			want: "No match was found for the specified search criteria and package name 'nano*'." +
				" RequiredVersion '1.2.3.4' was not found.",
		},
		{
			name: "unknown required version without a name",
			opts: Options{RequiredVersion: "1.2.3.4"},
			want: "No match was found for the specified search criteria and package name '*'." +
				" RequiredVersion '1.2.3.4' was not found.",
		},
		{
			name: "exact name with bounds that exclude every version",
			opts: Options{Name: "NanoServer", MinimumVersion: "11.0"},
			want: "No match was found for the specified search criteria and package name 'NanoServer'.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Filter(testEntries, tt.opts)
			if err == nil {
				t.Fatalf("Filter() = %s, want an error", ids(got))
			}
			if !errdefs.IsNotFound(err) {
				t.Errorf("class: %v is not NotFound", err)
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.ID != IDNoMatchFoundForCriteria {
				t.Errorf("error %v is not a NoMatchFoundForCriteria *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("message =\n  %q\nwant\n  %q", err.Error(), tt.want)
			}
			if len(got) != 0 {
				t.Errorf("entries = %s, want none", ids(got))
			}
		})
	}
}

func TestFilterLatestGroups(t *testing.T) {
	// The same display name in two repositories, or from two sources, is
	// two names; names differing only in case are one.
	in := []api.FindEntry{
		entry("Tool", "a/tool", "1.0.0.0"),
		entry("Tool", "a/tool", "2.0.0.0"),
		entry("Tool", "b/tool", "3.0.0.0"),
		entry("tool", "a/tool", "2.5.0.0"),
	}
	src := entry("Tool", "a/tool", "9.0.0.0")
	src.Source = "mirror"
	in = append(in, src)

	got, err := Filter(in, Options{Name: "tool"})
	if err != nil {
		t.Fatal(err)
	}
	want := "tool@2.5.0.0 Tool@3.0.0.0 Tool@9.0.0.0"
	if ids(got) != want {
		t.Errorf("Filter() = %s, want %s", ids(got), want)
	}
}

func TestFilterTieBreakIsOrderIndependent(t *testing.T) {
	// Two manifests of one repository with equal versions ("1.0" and
	// "1.0.0.0"): the newer wins, whatever the input order.
	older := entry("X", "x", "1.0")
	older.Digest = "sha256:old"
	newer := entry("X", "x", "1.0.0.0")
	newer.Digest = "sha256:new"
	newer.Created = created.Add(time.Hour)
	for _, in := range [][]api.FindEntry{{older, newer}, {newer, older}} {
		got, err := Filter(in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Digest != "sha256:new" {
			t.Errorf("Filter(%s) = %v, want the newer manifest", ids(in), got)
		}
	}
}

func TestMatchName(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"", "anything", true},
		{"*", "", true},
		{"*", "x", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a*b", "ab", true},
		{"a*b", "abab", true},
		{"a*b", "abac", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"**", "abc", true},
		{"*?", "", false},
		{"a.b", "aXb", false},
		{"a+b", "a+b", true},
		{"a\\*", "a\\xyz", true},
		{"ÉCOLE*", "école-1", true},
		{"x*y*z*w", strings.Repeat("x", 200) + "y", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q~%q", tt.pat, tt.name), func(t *testing.T) {
			if got := MatchName(tt.pat, tt.name); got != tt.want {
				t.Errorf("MatchName(%q, %q) = %v, want %v", tt.pat, tt.name, got, tt.want)
			}
		})
	}
}

func TestFilterDropsCopies(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	orig := api.FindEntry{Name: "IIS", Repository: "iis", Version: "1.0.0.0", Digest: d}
	copy1 := api.FindEntry{Name: "IIS", Repository: "mirror/iis", Version: "1.0.0.0", Digest: d}
	other := api.FindEntry{Name: "IIS", Repository: "other/iis", Version: "1.0.0.0", Digest: "sha256:" + strings.Repeat("b", 64)}
	got, err := Filter([]api.FindEntry{copy1, orig, other}, Options{Name: "iis", AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Repository != "iis" || got[1].Repository != "other/iis" {
		t.Errorf("Filter = %+v, want iis and other/iis", got)
	}
	// Found by its own repository, the copy shows.
	got, err = Filter([]api.FindEntry{copy1, orig}, Options{Name: "mirror/*"})
	if err != nil || len(got) != 1 || got[0].Repository != "mirror/iis" {
		t.Errorf("Filter(mirror/*) = %+v, %v", got, err)
	}
}
