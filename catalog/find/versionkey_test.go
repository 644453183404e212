package find

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	goversion "github.com/hashicorp/go-version"
)

// TestVersionKeyAgreesWithGoVersion compares the order of the keys with
// go-version's Compare over random versions of 1 to 5 segments, with and
// without a prerelease of one part, where Compare is consistent: not
// between a prerelease and a version of another number of segments, where
// Compare ignores the prerelease (9.0 equals 9.0.0.0-rc1, which is below
// 9.0.0.0).
func TestVersionKeyAgreesWithGoVersion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pres := []string{"", "", "", "alpha", "beta", "rc1", "1", "2", "10"}
	var vs []string
	for range 400 {
		n := 1 + rng.IntN(5)
		s := ""
		for i := range n {
			if i > 0 {
				s += "."
			}
			s += fmt.Sprint([]int{0, 0, 1, 2, 9, 10, 14393, 1 << 40}[rng.IntN(8)])
		}
		if p := pres[rng.IntN(len(pres))]; p != "" {
			s += "-" + p
		}
		vs = append(vs, s)
	}
	for i, a := range vs {
		va := goversion.Must(goversion.NewVersion(a))
		ka := VersionKey(a)
		for _, b := range vs[i:] {
			vb := goversion.Must(goversion.NewVersion(b))
			if (va.Prerelease() != "" || vb.Prerelease() != "") && len(va.Segments64()) != len(vb.Segments64()) {
				continue
			}
			want := va.Compare(vb)
			if got := bytes.Compare(ka, VersionKey(b)); got != want {
				t.Fatalf("VersionKey(%q) vs VersionKey(%q): %d, go-version compares them %d", a, b, got, want)
			}
		}
	}
}

func TestVersionKeyOrder(t *testing.T) {
	// In ascending order; each line is above the one before it.
	ordered := []string{
		"",
		"abc",
		"abc\x00",
		"abc\x01",
		"abcd",
		"not a version",
		"1.0-1",
		"1.0-1.1",
		"1.0-2",
		"1.0-alpha",
		"1.0-alpha.1",
		"1.0-alpha.beta",
		"1.0-beta",
		"1.0",
		"1.0.0.1",
		"1.1",
		"2",
		"10.0.10586.0",
		"10.0.14393.0",
		"10.0.14393.1000",
		"100",
	}
	for i := 1; i < len(ordered); i++ {
		a, b := ordered[i-1], ordered[i]
		if bytes.Compare(VersionKey(a), VersionKey(b)) >= 0 {
			t.Errorf("VersionKey(%q) is not below VersionKey(%q)", a, b)
		}
	}
	for _, same := range [][2]string{{"1", "1.0.0"}, {"1.0", "1.0.0.0"}, {"1.0+build5", "1.0"}, {"v1.2", "1.2"}} {
		if !bytes.Equal(VersionKey(same[0]), VersionKey(same[1])) {
			t.Errorf("VersionKey(%q) != VersionKey(%q)", same[0], same[1])
		}
	}
}

// TestVersionKeyIsPrefixFree checks that no key begins another, so that a
// key can be followed by more fields without changing the order.
func TestVersionKeyIsPrefixFree(t *testing.T) {
	vs := []string{"", "a", "ab", "1", "1.1", "1.0.1", "1-a", "1-a.b", "1-1", "1-1.2", "x\x00", "x\x01y"}
	keys := make([][]byte, len(vs))
	for i, v := range vs {
		keys[i] = VersionKey(v)
	}
	for i, a := range keys {
		for j, b := range keys {
			if i != j && !bytes.Equal(a, b) && bytes.HasPrefix(b, a) {
				t.Errorf("VersionKey(%q) = %x begins VersionKey(%q) = %x", vs[i], a, vs[j], b)
			}
		}
	}
}
