package e2e

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// junitReport is the part of the conformance suite's results/junit.xml that
// the test reads.
type junitReport struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Class   string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
		} `xml:"testcase"`
		Errors int `xml:"errors,attr"`
	} `xml:"testsuite"`
}

// TestConformance runs the OCI distribution-spec conformance suite, at its
// default settings (every API and data area on, sha512 and non-distributable
// layers included), against a freshly started catalogd with its default
// settings. The only thing it is given is the admin credentials that
// catalogd creates on first start.
func TestConformance(t *testing.T) {
	bin := tool(t, "conformance")
	c := startCatalogd(t, false)
	if c.Password == "" {
		t.Fatal("catalogd did not create auth/admin-password on first start")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+c.Addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/one",
		"OCI_REPO2=conformance/two",
		"OCI_USERNAME="+c.User,
		"OCI_PASSWORD="+c.Password,
		"OCI_RESULTS_DIR="+filepath.Join(dir, "results"),
	)
	out, runErr := cmd.CombinedOutput()

	b, err := os.ReadFile(filepath.Join(dir, "results", "junit.xml"))
	if err != nil {
		t.Fatalf("no junit report (%v); conformance exited with %v:\n%s", err, runErr, out)
	}
	var rep junitReport
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var failed []string
	errs := 0
	for _, s := range rep.Suites {
		errs += s.Errors
		for _, tc := range s.Cases {
			if tc.Failure != nil || tc.Error != nil {
				failed = append(failed, tc.Class+"/"+tc.Name)
			}
		}
	}
	passed := rep.Tests - rep.Failures - errs - rep.Skipped - rep.Disabled
	t.Logf("OCI conformance against catalogd: %d tests, %d passed, %d failed, %d errors, %d skipped, %d disabled",
		rep.Tests, passed, rep.Failures, errs, rep.Skipped, rep.Disabled)
	if rep.Failures+errs > 0 || runErr != nil {
		t.Errorf("conformance failures (%v):\n  %s", runErr, strings.Join(failed, "\n  "))
		t.Logf("conformance output:\n%s", out)
	}
	if rep.Tests < 800 {
		t.Errorf("only %d conformance tests ran; the suite's defaults run over 800", rep.Tests)
	}
}
