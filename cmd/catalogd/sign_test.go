package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/catalog/signing"
)

func TestKeygenAndSign(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "cosign")
	ctx := context.Background()

	// No password: refused, nothing written.
	a, _, errOut := testApp(nil, "")
	if code := a.main(ctx, []string{"keygen", "--out", prefix}); code != 2 || !strings.Contains(errOut.String(), "CATALOGD_KEY_PASSWORD") {
		t.Fatalf("keygen without a password: exit %d\n%s", code, errOut.String())
	}
	if _, err := os.Stat(prefix + ".key"); err == nil {
		t.Fatal("keygen without a password wrote a key")
	}
	// The password on stdin; the private key is the owner's alone.
	a, out, errOut := testApp(nil, "pw\n")
	if code := a.main(ctx, []string{"keygen", "--out", prefix, "--password-stdin"}); code != 0 {
		t.Fatalf("keygen: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "Private key written to "+prefix+".key") {
		t.Fatalf("keygen output %q", out.String())
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v, mode %v", err, st.Mode())
	}
	// An existing key is kept.
	a, _, errOut = testApp(map[string]string{"CATALOGD_KEY_PASSWORD": "pw"}, "")
	if code := a.main(ctx, []string{"keygen", "--out", prefix}); code != 1 || !strings.Contains(errOut.String(), "use --force") {
		t.Fatalf("keygen over a key: exit %d\n%s", code, errOut.String())
	}

	// Sign the seeded NanoServer with the key; cosign's variable gives
	// the password.
	root := t.TempDir()
	env := map[string]string{"CATALOGD_ROOT": root, "COSIGN_PASSWORD": "pw"}
	a, _, errOut = testApp(env, "")
	if code := a.main(ctx, []string{"seed", "--base-layer-size", "2KiB", "--app-layer-size", "512"}); code != 0 {
		t.Fatalf("seed: exit %d\n%s", code, errOut.String())
	}
	a, out, errOut = testApp(env, "")
	if code := a.main(ctx, []string{"sign", "--key", prefix + ".key", "NanoServer:10.0.10586.0", "microsoft/iis"}); code != 0 {
		t.Fatalf("sign: exit %d\n%s", code, errOut.String())
	}
	pub, _ := os.ReadFile(prefix + ".pub")
	k, err := signing.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Signed NanoServer 10.0.10586.0 (sha256:") || !strings.Contains(out.String(), "Signed microsoft/iis 1.0.0.0") ||
		!strings.Contains(out.String(), "with key "+k.ID) {
		t.Fatalf("sign output:\n%s", out.String())
	}
	// A wrong password, a missing key and a name no image has.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		{map[string]string{"CATALOGD_ROOT": root, "COSIGN_PASSWORD": "wrong"}, []string{"sign", "--key", prefix + ".key", "NanoServer"}, 1, "a wrong password?"},
		{env, []string{"sign", "--key", filepath.Join(dir, "none.key"), "NanoServer"}, 1, "none.key"},
		{env, []string{"sign", "--key", prefix + ".key", "NoSuchImage"}, 1, "No match was found"},
		{env, []string{"sign", "NanoServer"}, 2, "--key is required"},
		{env, []string{"sign", "--key", prefix + ".key", "Nano*"}, 2, "without wildcards"},
	} {
		a, _, errOut := testApp(tc.env, "")
		if code := a.main(ctx, tc.args); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d and %q:\n%s", tc.args, code, tc.code, tc.want, errOut.String())
		}
	}
}
