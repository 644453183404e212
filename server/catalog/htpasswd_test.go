package catalog

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/crypto/bcrypt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

func minCostHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseHtpasswd(t *testing.T) {
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost
	h2a := minCostHash(t, "pw-a")
	h2y := "$2y$" + strings.TrimPrefix(minCostHash(t, "pw-y"), "$2a$") // what Apache's htpasswd -B writes
	h2b := "$2b$" + strings.TrimPrefix(minCostHash(t, "pw-b"), "$2a$")

	t.Run("bcrypt kinds, comments and blank lines", func(t *testing.T) {
		file := "# users\n\nalice:" + h2a + "\n  bob:" + h2y + "  \r\ncarol:" + h2b + "\n"
		h, err := ParseHtpasswd(strings.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Users(); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
			t.Fatalf("users %v", got)
		}
		for _, tc := range []struct {
			user, pass string
			ok         bool
		}{
			{"alice", "pw-a", true},
			{"bob", "pw-y", true},
			{"carol", "pw-b", true},
			{"alice", "pw-y", false},
			{"alice", "", false},
			{"dave", "pw-a", false},
			{"", "", false},
			{"Alice", "pw-a", false},
		} {
			if got := authenticates(h, tc.user, tc.pass); got != tc.ok {
				t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.ok)
			}
		}
	})

	for _, tc := range []struct {
		name, file, want string
	}{
		{"apr1 md5", "alice:$apr1$abcdefgh$0123456789abcdefghijkl\n", "not bcrypt"},
		{"sha1", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "not bcrypt"},
		{"crypt", "alice:rl5eZQqI6Oq1I\n", "not bcrypt"},
		{"plain text", "alice:secret\n", "not bcrypt"},
		{"truncated bcrypt", "alice:$2y$05$tooshort\n", "bad bcrypt hash"},
		{"no colon", "alice\n", "not user:hash"},
		{"empty user", ":" + h2a + "\n", "not user:hash"},
		{"user twice", "alice:" + h2a + "\nalice:" + h2a + "\n", "listed twice"},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := ParseHtpasswd(strings.NewReader(tc.file))
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("err %v, want an invalid argument naming the line and %q", err, tc.want)
			}
		})
	}

	t.Run("an empty file has no users", func(t *testing.T) {
		h, err := ParseHtpasswd(strings.NewReader(""))
		if err != nil || len(h.Users()) != 0 || authenticates(h, "admin", "") {
			t.Fatalf("empty file: %v %v", h.Users(), err)
		}
	})
}

func TestLoadHtpasswdMissing(t *testing.T) {
	_, err := LoadHtpasswd(filepath.Join(t.TempDir(), "nope"))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("err %v, want not found", err)
	}
}

func TestSetPassword(t *testing.T) {
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost
	dir := t.TempDir()
	path := filepath.Join(dir, "auth", "htpasswd")

	if err := SetPassword(path, "admin", "first"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	// Another user and a comment, written by hand, are kept.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("# kept comment\nother:" + minCostHash(t, "other-pw") + "\n")
	f.Close()

	if err := SetPassword(path, "admin", "second"); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "new", "third"); err != nil {
		t.Fatal(err)
	}
	h, err := LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Users(); !slices.Equal(got, []string{"admin", "other", "new"}) {
		t.Fatalf("users %v", got)
	}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"admin", "second", true}, {"admin", "first", false}, {"other", "other-pw", true}, {"new", "third", true},
	} {
		if got := authenticates(h, tc.user, tc.pass); got != tc.ok {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.ok)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "# kept comment\n") {
		t.Fatalf("comment lost:\n%s", b)
	}

	for _, tc := range []struct{ name, user, pass string }{
		{"colon in the user", "a:b", "pw"},
		{"empty user", "", "pw"},
		{"line break in the user", "a\nb", "pw"},
		{"empty password", "admin", ""},
		{"password over bcrypt's 72 bytes", "admin", strings.Repeat("x", 73)},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if err := SetPassword(path, tc.user, tc.pass); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err %v, want invalid argument", err)
			}
		})
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(b) {
		t.Fatal("a refused SetPassword changed the file")
	}

	t.Run("a file that does not parse is left alone", func(t *testing.T) {
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, []byte("alice:{SHA}abc\n"), 0o600)
		if err := SetPassword(bad, "bob", "pw"); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("err %v", err)
		}
		if got, _ := os.ReadFile(bad); string(got) != "alice:{SHA}abc\n" {
			t.Fatalf("bad file changed: %q", got)
		}
	})
}

// TestAuthenticateCache checks that verified credentials are remembered and
// that the cache never lets a wrong password or another user through.
func TestAuthenticateCache(t *testing.T) {
	h, err := ParseHtpasswd(strings.NewReader("admin:" + minCostHash(t, "secret") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if !authenticates(h, "admin", "secret") {
			t.Fatalf("attempt %d: right password refused", i)
		}
	}
	if len(h.verified) != 1 {
		t.Fatalf("cache holds %d entries after three logins of one user, want 1", len(h.verified))
	}
	for _, tc := range []struct{ user, pass string }{
		{"admin", "Secret"}, {"admin", "secret "}, {"admin", ""}, {"other", "secret"}, {"admin\x00", "secret"},
	} {
		if authenticates(h, tc.user, tc.pass) {
			t.Errorf("Authenticate(%q, %q) = true after a cached success", tc.user, tc.pass)
		}
	}
	// An expired entry is checked with bcrypt again, and still passes.
	for k := range h.verified {
		h.verified[k] = time.Now().Add(-2 * verifiedTTL)
	}
	if !authenticates(h, "admin", "secret") {
		t.Fatal("expired cache entry made the right password fail")
	}
}

// TestHtpasswdFollowsTheFile: users that SetPassword adds or changes while
// the file is loaded take effect at the next authentication, a changed
// password stops working at once (the cache included), and a file that no
// longer parses keeps the previous users.
func TestHtpasswdFollowsTheFile(t *testing.T) {
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := SetPassword(path, "alice", "first password"); err != nil {
		t.Fatal(err)
	}
	h, err := LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	if !authenticates(h, "alice", "first password") || authenticates(h, "bob", "bob's password") {
		t.Fatal("the loaded file does not authenticate as written")
	}

	if err := SetPassword(path, "bob", "bob's password"); err != nil {
		t.Fatal(err)
	}
	if !authenticates(h, "bob", "bob's password") {
		t.Fatal("a user added to the file is refused")
	}
	if got := h.Users(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("users %q", got)
	}

	// alice's first password is in the cache of verified credentials.
	if err := SetPassword(path, "alice", "second password"); err != nil {
		t.Fatal(err)
	}
	if authenticates(h, "alice", "first password") {
		t.Fatal("a changed password still works")
	}
	if !authenticates(h, "alice", "second password") {
		t.Fatal("the new password is refused")
	}

	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("alice:not a bcrypt hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if !authenticates(h, "alice", "second password") || !authenticates(h, "bob", "bob's password") {
		t.Fatal("a file that no longer parses dropped the previous users")
	}
}

// authenticates reports whether h accepts user and password.
func authenticates(h *Htpasswd, user, password string) bool {
	return h.Authenticate(context.Background(), user, password) == nil
}

// TestHtpasswdFileGoesAway: a deleted file drops its users (every write
// then gets 401) with a warning, once; a file that no longer parses keeps
// them, with a warning; and the users work again when the file is back.
func TestHtpasswdFileGoesAway(t *testing.T) {
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost
	const user, password = "alice", "alice's password"
	for _, tc := range []struct {
		name    string
		remove  func(t *testing.T, path string)
		keeps   bool
		warning string
	}{
		{"deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, false, "was deleted"},
		{"moved away", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
		}, false, "was deleted"},
		{"replaced by one that does not parse", func(t *testing.T, path string) {
			if err := writeFileAtomic(path, []byte(user+":{SHA}not bcrypt\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, "cannot be used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "htpasswd")
			if err := SetPassword(path, user, password); err != nil {
				t.Fatal(err)
			}
			h, err := LoadHtpasswd(path)
			if err != nil {
				t.Fatal(err)
			}
			e := newTestEnv(t, WithHtpasswd(h))
			push := func(status int) {
				t.Helper()
				e.do(http.MethodPost, "/v2/repo/blobs/uploads/", nil, withBasic(user, password)).wantStatus(t, status)
			}
			push(http.StatusAccepted) // and alice's credentials are now cached

			tc.remove(t, path)
			logger, hook := logtest.NewNullLogger()
			ctx := middleware.WithLog(context.Background(), logrus.NewEntry(logger))
			err = h.Authenticate(ctx, user, password)
			if tc.keeps != (err == nil) {
				t.Fatalf("Authenticate after the file was %s: %v", tc.name, err)
			}
			if !tc.keeps && !errdefs.IsUnauthenticated(err) {
				t.Fatalf("err %v, want unauthenticated", err)
			}
			if len(hook.AllEntries()) != 1 || hook.LastEntry().Level != logrus.WarnLevel ||
				!strings.Contains(hook.LastEntry().Message, tc.warning) {
				t.Fatalf("log %v, want one warning that says %q", hook.AllEntries(), tc.warning)
			}
			h.Authenticate(ctx, user, password)
			if len(hook.AllEntries()) != 1 {
				t.Fatalf("%d log lines, want the warning once", len(hook.AllEntries()))
			}
			if tc.keeps {
				push(http.StatusAccepted)
			} else {
				push(http.StatusUnauthorized)
				if users := h.Users(); len(users) != 0 {
					t.Fatalf("users %q after the file was %s", users, tc.name)
				}
			}

			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if err := SetPassword(path, user, password); err != nil {
				t.Fatal(err)
			}
			if err := h.Authenticate(ctx, user, password); err != nil {
				t.Fatalf("the file is back, its user is refused: %v", err)
			}
			if last := hook.LastEntry(); last.Level != logrus.InfoLevel || !strings.Contains(last.Message, "read again") {
				t.Fatalf("last log line %q, want that the file was read again", last.Message)
			}
			push(http.StatusAccepted)
		})
	}
}
