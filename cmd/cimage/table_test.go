package main

import (
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

const tp4 = "Container OS Image of Windows Server 2016 Technical Preview 4"

// TestFormatFind is the golden table of find: the reference's Name,
// Version and Description columns, the source in between, the
// description cut like PowerShell's.
func TestFormatFind(t *testing.T) {
	got := formatFind([]api.FindEntry{
		{Name: "NanoServer", Version: "10.0.10586.0", Source: "catalog", Description: tp4},
		{Name: "WindowsServerCore", Version: "10.0.10586.0", Source: "catalog", Description: tp4},
		{Name: "microsoft/aspnet", Version: "4.6.2.0", Source: "hub", Description: "ASP.NET"},
	})
	const want = "" +
		"Name                 Version                 Source      Description\n" +
		"----                 -------                 ------      -----------\n" +
		"NanoServer           10.0.10586.0            catalog     Container OS Image of Windows Server 2016 Techn...\n" +
		"WindowsServerCore    10.0.10586.0            catalog     Container OS Image of Windows Server 2016 Techn...\n" +
		"microsoft/aspnet     4.6.2.0                 hub         ASP.NET\n"
	if got != want {
		t.Fatalf("find table:\n%s\nwant:\n%s", got, want)
	}
	if formatFind(nil) != "" {
		t.Fatal("an empty find prints a table")
	}
}

// TestFormatImages is the golden table of images: the reference's
// Get-ContainerImage output, character for character.
func TestFormatImages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		images []api.Image
		want   string
	}{
		{
			name: "the reference",
			images: []api.Image{
				{Name: "NanoServer", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true},
				{Name: "WindowsServerCore", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true},
				{Name: "WindowsServerCoreIIS", Publisher: "CN=Demo", Version: "1.0.0.0"},
			},
			want: "" +
				"Name                    Publisher       Version         IsOSImage\n" +
				"----                    ---------       -------         ---------\n" +
				"NanoServer              CN=Microsoft    10.0.10586.0    True\n" +
				"WindowsServerCore       CN=Microsoft    10.0.10586.0    True\n" +
				"WindowsServerCoreIIS    CN=Demo         1.0.0.0         False\n",
		},
		{
			name: "a long name widens its column, keeping two spaces",
			images: []api.Image{
				{Name: "NanoServer", Publisher: "CN=Microsoft", Version: "10.0.10586.0", IsOSImage: true},
				{Name: "microsoft/windowsservercore-iis", Publisher: "CN=Microsoft Corporation", Version: "1.0.0.0"},
			},
			want: "" +
				"Name                             Publisher                 Version         IsOSImage\n" +
				"----                             ---------                 -------         ---------\n" +
				"NanoServer                       CN=Microsoft              10.0.10586.0    True\n" +
				"microsoft/windowsservercore-iis  CN=Microsoft Corporation  1.0.0.0         False\n",
		},
		{name: "none prints nothing", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatImages(tc.images); got != tc.want {
				t.Fatalf("images table:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ..."},
		{"ünïcödé wörds", 10, "ünïcödé..."},
		{"no limit", 0, "no limit"},
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
