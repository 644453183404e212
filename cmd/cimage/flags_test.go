package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider"
)

func TestPowerShellArgs(t *testing.T) {
	f := newTestFlagSet()
	var v versionFlags
	v.register(f, &globals{})
	f.Bool("what-if", false, "")
	f.String("path", "", "")
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-Name", "NanoServer", "-RequiredVersion", "10.0"}, []string{"NanoServer", "--required-version", "10.0"}},
		{[]string{"-Name=NanoServer", "-AllVersions", "-WhatIf"}, []string{"NanoServer", "--all-versions", "--what-if"}},
		{[]string{"-Destination", "C:\\x", "-Version=1"}, []string{"--path", "C:\\x", "--version=1"}},
		{[]string{"--required-version", "1", "-5", "-"}, []string{"--required-version", "1", "-5", "-"}},
		{[]string{"a", "--", "-Name", "-WhatIf"}, []string{"a", "--", "-Name", "-WhatIf"}},
		{[]string{"-Nope"}, []string{"-Nope"}},
	} {
		if got := powerShellArgs(f, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("powerShellArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"force", "forse", 1}, {"requiredversion", "requriedversion", 2}, {"abc", "", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCmdletParameters(t *testing.T) {
	e := newEnv(t, &fakeBackend{findResult: []api.FindEntry{{Name: "NanoServer", Version: "10.0.10586.0", Source: "catalog"}}})
	// -Version is -RequiredVersion, in the reference's spelling and in
	// cimage's.
	e.run(t, "", "find", "NanoServer", "--version", "10.0.10586.0").want(t, 0)
	e.run(t, "", "find", "-Name", "NanoServer", "-Version", "10.0.10586.0").want(t, 0)
	want := provider.FindOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}
	for i, got := range e.fake.finds {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("find %d: options %+v, want %+v", i, got, want)
		}
	}
	r := e.run(t, "", "install", "NanoServer", "--forse").want(t, 2)
	if r.stderr != "cimage: unknown flag --forse; did you mean --force?\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	// OneGet's rules are checked before any request: exit 2.
	before := len(e.fake.finds)
	r = e.run(t, "", "find", "NanoServer", "--required-version", "abc").want(t, 2)
	if !strings.Contains(r.stderr, "The specified version 'abc' is invalid.") {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "install", "NanoServer", "--all-versions", "--version", "1.0").want(t, 2)
	if len(e.fake.finds) != before || len(e.fake.installs) != 0 {
		t.Fatal("a refused command reached providerd")
	}
}

func TestNearestCommand(t *testing.T) {
	for in, want := range map[string]string{
		"instal": "install", "Install-ContainerImage": "install", "Get-ContainerImage": "images",
		"Remove-ContainerImage": "remove", "Save-ContainerImage": "save", "imgaes": "images", "frobnicate": "",
	} {
		if got := nearestCommand(in); got != want {
			t.Errorf("nearestCommand(%q) = %q, want %q", in, got, want)
		}
	}
	e := newEnv(t, &fakeBackend{})
	if r := e.run(t, "", "instal", "NanoServer").want(t, 2); r.stderr != "cimage: unknown command \"instal\"; did you mean \"install\"? See cimage -h\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestGroupHelp(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	for _, group := range []string{"container", "source", "jobs"} {
		r := e.run(t, "", group, "-h").want(t, 0)
		if !strings.Contains(r.stdout, "Subcommands") || !strings.Contains(r.stdout, group+" list") && group != "jobs" {
			t.Fatalf("%s -h:\n%s", group, r.stdout)
		}
	}
	r := e.run(t, "", "source").want(t, 2)
	if !strings.HasPrefix(r.stderr, "cimage source: give a subcommand\n") || !strings.Contains(r.stderr, "source add NAME URL") {
		t.Fatalf("stderr %q", r.stderr)
	}
	e.run(t, "", "container", "frobnicate").want(t, 2)
}

func TestJSONErrors(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	r := e.run(t, "", "--output", "json", "find", "Missing").want(t, 3)
	var got jsonError
	if err := json.Unmarshal([]byte(r.stderr), &got); err != nil {
		t.Fatalf("stderr %q: %v", r.stderr, err)
	}
	if want := (jsonErrorBody{Class: "NotFound", Message: `no image named "Missing" in the sources`, ExitCode: 3}); !reflect.DeepEqual(got.Error, want) {
		t.Fatalf("error %+v, want %+v", got.Error, want)
	}
	if r.stdout != "" {
		t.Fatalf("stdout %q", r.stdout)
	}
	r = e.run(t, "", "find", "--output", "json", "--bogus").want(t, 2)
	if err := json.Unmarshal([]byte(r.stderr), &got); err != nil || got.Error.Class != "InvalidArgument" {
		t.Fatalf("stderr %q: %v", r.stderr, err)
	}
}

func TestNoMatchHint(t *testing.T) {
	e := newEnv(t, &fakeBackend{installErr: find.NoMatch("Nope", "")})
	r := e.run(t, "", "install", "Nope").want(t, 3)
	want := "cimage: No match was found for the specified search criteria and package name 'Nope'. " + hintNoMatch + "\n"
	if r.stderr != want {
		t.Fatalf("stderr %q, want %q", r.stderr, want)
	}
	if strings.Contains(r.stderr, "Get-PackageSource") {
		t.Fatal("cimage names a cmdlet")
	}
	r = e.run(t, "", "--output", "json", "install", "Nope").want(t, 3)
	var got jsonError
	if err := json.Unmarshal([]byte(r.stderr), &got); err != nil || got.Error.ID != find.IDNoMatchFoundForCriteria {
		t.Fatalf("stderr %q: %v", r.stderr, err)
	}
}

func TestImagesNoMatch(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	e.run(t, "", "images").want(t, 0)
	r := e.run(t, "", "images", "NanoSrever").want(t, 3)
	if r.stderr != "cimage: image \"NanoSrever\" is not installed\n" {
		t.Fatalf("stderr %q", r.stderr)
	}
	// A pattern that matches nothing is an empty answer, as in find.
	if r := e.run(t, "", "images", "Nano*").want(t, 0); r.stdout != "" || r.stderr != "" {
		t.Fatalf("images Nano*: %+v", r)
	}
}

// TestSaveWhatIf plans the save: the images and the file, nothing
// written, no directory checked or made.
func TestSaveWhatIf(t *testing.T) {
	e := newEnv(t, &fakeBackend{})
	dir := t.TempDir()
	r := e.run(t, "", "save", "NanoServer", "--path", dir, "--what-if").want(t, 0)
	if want := "What if: saving NanoServer 10.0.10586.0 to " + filepath.Join(dir, "NanoServer-10-0-10586-0.tar") + "\n"; r.stdout != want {
		t.Fatalf("stdout %q, want %q", r.stdout, want)
	}
	missing := filepath.Join(dir, "missing", "x.tar")
	r = e.run(t, "", "save", "-WhatIf", "-Name", "NanoServer", "-Path", missing).want(t, 0)
	if !strings.Contains(r.stdout, "to "+missing) {
		t.Fatalf("stdout %q", r.stdout)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a planned save wrote %v", entries)
	}
	if len(e.fake.saves) != 2 || !e.fake.saves[0].WhatIf {
		t.Fatalf("requests %+v", e.fake.saves)
	}
}
