package catalog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// bcryptPrefixes are the hash kinds an htpasswd file may hold. Apache's
// htpasswd -B writes $2y$; Go's bcrypt writes $2a$. The other kinds of
// Apache's format (MD5 $apr1$, {SHA}, crypt, plain) are refused.
var bcryptPrefixes = []string{"$2a$", "$2b$", "$2y$"}

// passwordCost is the bcrypt cost of HashPassword; tests lower it.
var passwordCost = bcrypt.DefaultCost

// Htpasswd holds the users of an htpasswd file of bcrypt hashes
// ("user:$2y$..." lines). It is safe for concurrent use.
//
// One loaded from a file (LoadHtpasswd) follows the file, as the
// distribution registry's does: each authentication looks at the file's
// identity, size and modification time, and reads it again when they
// changed, so the users that `catalogd passwd` adds or changes take effect
// without a restart. A change also forgets the recently verified
// credentials, so a changed password stops working at once. A file that no
// longer reads or parses leaves the previous users in place, with a
// warning. A file that was deleted drops its users, with a warning: every
// authentication fails until the file is back, and its users then work
// again.
//
// bcrypt is slow on purpose, so the comparisons run in a bounded number
// of slots (half of GOMAXPROCS, at least one): a flood of guesses uses
// those cores and leaves the others to the requests that need no
// credentials.
type Htpasswd struct {
	path string // "" when parsed from a reader: never read again

	usersMu sync.Mutex
	users   []htUser
	file    os.FileInfo // of the users' file, as last read; nil when it was deleted
	gen     uint64      // counts the reads of the file; part of the cache's keys
	deleted bool        // the file was deleted and its users dropped

	dummyOnce sync.Once
	dummy     []byte

	// slots holds one token per bcrypt comparison under way; its capacity
	// is the bound. compareHash is bcrypt's comparison; tests count it.
	slots       chan struct{}
	compareHash func(hash, password []byte) error

	// verified remembers recently verified credentials, so that the many
	// write requests of one push pay for bcrypt once, not each time.
	// Entries are keyed by an HMAC of user and password under a key that
	// lives only in this process; the passwords themselves are not kept.
	cacheKey [32]byte
	mu       sync.Mutex
	verified map[[sha256.Size]byte]time.Time
	// flights are the verifications under way, by the same key.
	flights map[[sha256.Size]byte]*flight
}

// flight is a verification under way; done is closed once err is set.
type flight struct {
	done chan struct{}
	err  error
}

// join returns the verification under way of the credentials mac, or,
// when there is none, a new one that the caller leads (true) and ends with
// land.
func (h *Htpasswd) join(mac [sha256.Size]byte) (*flight, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.flights[mac]; ok {
		return f, false
	}
	if h.flights == nil {
		h.flights = map[[sha256.Size]byte]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	h.flights[mac] = f
	return f, true
}

// land ends the verification f of mac with err, for those who wait on it.
func (h *Htpasswd) land(mac [sha256.Size]byte, f *flight, err error) {
	h.mu.Lock()
	delete(h.flights, mac)
	h.mu.Unlock()
	f.err = err
	close(f.done)
}

// Bounds of the verified-credentials cache.
const (
	verifiedTTL = 5 * time.Minute
	maxVerified = 1024
)

type htUser struct {
	name    string
	nameSum [sha256.Size]byte
	hash    []byte
}

// LoadHtpasswd reads the htpasswd file at path (see ParseHtpasswd), and
// follows its changes from then on.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	users, fi, err := readHtpasswd(path)
	if err != nil {
		return nil, err
	}
	h, err := newHtpasswd(users)
	if err != nil {
		return nil, err
	}
	h.path, h.file = path, fi
	return h, nil
}

// readHtpasswd reads and parses the file at path.
func readHtpasswd(path string) ([]htUser, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("htpasswd file %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, nil, fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	users, err := parseUsers(f)
	if err != nil {
		return nil, nil, fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	return users, fi, nil
}

// current returns the users and their generation, after reading the file
// again if it changed. Credentials verified against one generation are
// cached under it, so that an authentication that raced a change cannot
// put an old password back in the cache. Its warnings go to the logger of
// ctx (middleware.Log).
func (h *Htpasswd) current(ctx context.Context) ([]htUser, uint64) {
	h.usersMu.Lock()
	defer h.usersMu.Unlock()
	if h.path == "" {
		return h.users, h.gen
	}
	fi, err := os.Stat(h.path)
	if errors.Is(err, os.ErrNotExist) {
		h.dropUsers(ctx)
		return h.users, h.gen
	}
	if err != nil || sameVersion(fi, h.file) {
		return h.users, h.gen
	}
	users, rfi, err := readHtpasswd(h.path)
	switch {
	case errdefs.IsNotFound(err):
		// Deleted between the Stat and the Open.
		h.dropUsers(ctx)
		return h.users, h.gen
	case err != nil:
		// Not again until the file changes once more.
		h.file = fi
		middleware.Log(ctx).WithError(err).Warn("the htpasswd file changed but cannot be used: keeping the previous users")
		return h.users, h.gen
	}
	h.setUsers(users, rfi)
	h.deleted = false
	middleware.Log(ctx).WithFields(logrus.Fields{"htpasswd": h.path, "users": len(users)}).Info("htpasswd file read again")
	return h.users, h.gen
}

// dropUsers forgets the users of a deleted file, once: nobody can
// authenticate until the file is back. The caller holds usersMu.
func (h *Htpasswd) dropUsers(ctx context.Context) {
	if h.deleted {
		return
	}
	h.setUsers(nil, nil)
	h.deleted = true
	middleware.Log(ctx).WithField("htpasswd", h.path).
		Warn("the htpasswd file was deleted: dropped its users, every push and delete now fails until the file is back")
}

// setUsers installs a new generation of users, read from the file fi, and
// forgets the credentials verified against the previous one. The caller
// holds usersMu.
func (h *Htpasswd) setUsers(users []htUser, fi os.FileInfo) {
	h.users, h.file = users, fi
	h.gen++
	h.mu.Lock()
	h.verified = nil
	h.mu.Unlock()
}

// sameVersion reports whether a and b are the same file, unchanged.
func sameVersion(a, b os.FileInfo) bool {
	return b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// ParseHtpasswd reads htpasswd lines. Blank lines and lines starting with #
// are skipped. Every other line must be "user:hash" with a bcrypt hash;
// any other hash kind, a malformed line or a user listed twice is an
// error of class errdefs.ErrInvalidArgument that names the line.
func ParseHtpasswd(r io.Reader) (*Htpasswd, error) {
	users, err := parseUsers(r)
	if err != nil {
		return nil, err
	}
	return newHtpasswd(users)
}

func newHtpasswd(users []htUser) (*Htpasswd, error) {
	h := &Htpasswd{
		users:       users,
		slots:       make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		compareHash: bcrypt.CompareHashAndPassword,
	}
	if _, err := rand.Read(h.cacheKey[:]); err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return h, nil
}

// parseUsers reads the lines of ParseHtpasswd.
func parseUsers(r io.Reader) ([]htUser, error) {
	var users []htUser
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("line %d: not user:hash: %w", n, errdefs.ErrInvalidArgument)
		}
		if !isBcrypt(hash) {
			return nil, fmt.Errorf("line %d: user %q: the hash is not bcrypt (%s): create it with `htpasswd -B` or `catalogd passwd`: %w",
				n, user, strings.Join(bcryptPrefixes, ", "), errdefs.ErrInvalidArgument)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d: user %q: bad bcrypt hash: %v: %w", n, user, err, errdefs.ErrInvalidArgument)
		}
		if seen[user] {
			return nil, fmt.Errorf("line %d: user %q listed twice: %w", n, user, errdefs.ErrInvalidArgument)
		}
		seen[user] = true
		users = append(users, htUser{name: user, nameSum: sha256.Sum256([]byte(user)), hash: []byte(hash)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

func isBcrypt(hash string) bool {
	for _, p := range bcryptPrefixes {
		if strings.HasPrefix(hash, p) {
			return true
		}
	}
	return false
}

// Users returns the user names, in file order.
func (h *Htpasswd) Users() []string {
	users, _ := h.current(context.Background())
	out := make([]string, 0, len(users))
	for _, u := range users {
		out = append(out, u.name)
	}
	return out
}

// Authenticate checks user and password against the file: nil when they
// match an entry, an error of class errdefs.ErrUnauthenticated when they
// do not, and the cause of ctx (context.Cause) when ctx ends before a
// verification slot is free. A caller that waits for a slot holds no lock;
// ctx bounds the wait, not the bcrypt comparison once it has started.
//
// The user lookup compares the SHA-256 of every name in constant time and
// visits every entry, and an unknown user still costs one bcrypt
// comparison against a dummy hash, so that the response time does not tell
// which user names exist. A pair verified in the last verifiedTTL is
// accepted from the cache without bcrypt, and without a slot.
func (h *Htpasswd) Authenticate(ctx context.Context, user, password string) error {
	a, ok := h.lookup(ctx, user, password)
	if ok {
		return nil
	}
	return h.verify(ctx, a)
}

// attempt is an authentication under way: the users it is checked
// against, and its key in the cache of verified credentials.
type attempt struct {
	users          []htUser
	mac            [sha256.Size]byte
	user, password string
}

// lookup starts an authentication: it follows the file, and reports
// whether user and password were verified recently, in which case the
// authentication has succeeded. Otherwise verify finishes it.
func (h *Htpasswd) lookup(ctx context.Context, user, password string) (attempt, bool) {
	users, gen := h.current(ctx)
	a := attempt{users: users, mac: h.credentialsMAC(gen, user, password), user: user, password: password}
	return a, h.recentlyVerified(a.mac)
}

// verify checks a with bcrypt, in a slot, and remembers a success. Its
// errors are Authenticate's.
func (h *Htpasswd) verify(ctx context.Context, a attempt) error {
	if err := h.acquireSlot(ctx); err != nil {
		return err
	}
	ok := h.compare(a.users, a.user, a.password)
	<-h.slots
	if !ok {
		return fmt.Errorf("user %q: invalid user name or password: %w", a.user, errdefs.ErrUnauthenticated)
	}
	h.remember(a.mac)
	return nil
}

// acquireSlot waits for a free verification slot until ctx ends. The
// caller gives the slot back with <-h.slots.
func (h *Htpasswd) acquireSlot(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("waiting to verify credentials: %w", context.Cause(ctx))
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to verify credentials: %w", context.Cause(ctx))
	}
}

func (h *Htpasswd) credentialsMAC(gen uint64, user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, h.cacheKey[:])
	m.Write(binary.BigEndian.AppendUint64(nil, gen))
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [sha256.Size]byte
	copy(out[:], m.Sum(nil))
	return out
}

func (h *Htpasswd) recentlyVerified(mac [sha256.Size]byte) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.verified[mac]
	return ok && time.Since(at) < verifiedTTL
}

func (h *Htpasswd) remember(mac [sha256.Size]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.verified == nil || len(h.verified) >= maxVerified {
		h.verified = map[[sha256.Size]byte]time.Time{}
	}
	h.verified[mac] = time.Now()
}

// fingerprint returns a digest of user's entry in the file, under a key
// that lives only in this process, or false when the file has no such
// user. The tokens of a user carry it: a new password or the user's
// removal changes it and ends them.
func (h *Htpasswd) fingerprint(ctx context.Context, user string) (fp [8]byte, ok bool) {
	users, _ := h.current(ctx)
	for i := range users {
		if users[i].name != user {
			continue
		}
		m := hmac.New(sha256.New, h.cacheKey[:])
		m.Write([]byte("fingerprint\x00"))
		m.Write([]byte(user))
		m.Write([]byte{0})
		m.Write(users[i].hash)
		copy(fp[:], m.Sum(nil))
		return fp, true
	}
	return fp, false
}

// compare checks user and password against the file with bcrypt.
func (h *Htpasswd) compare(users []htUser, user, password string) bool {
	sum := sha256.Sum256([]byte(user))
	var hash []byte
	for i := range users {
		if subtle.ConstantTimeCompare(sum[:], users[i].nameSum[:]) == 1 {
			hash = users[i].hash
		}
	}
	if hash == nil {
		_ = h.compareHash(h.dummyHash(users), []byte(password))
		return false
	}
	return h.compareHash(hash, []byte(password)) == nil
}

// dummyHash is a hash at the cost of the file's first entry, made once.
func (h *Htpasswd) dummyHash(users []htUser) []byte {
	h.dummyOnce.Do(func() {
		cost := passwordCost
		if len(users) > 0 {
			if c, err := bcrypt.Cost(users[0].hash); err == nil {
				cost = c
			}
		}
		h.dummy, _ = bcrypt.GenerateFromPassword([]byte("catalogd dummy password"), cost)
	})
	return h.dummy
}

// HashPassword returns the htpasswd line "user:<bcrypt hash>" for user and
// password, at bcrypt's default cost.
func HashPassword(user, password string) (string, error) {
	if err := validUser(user); err != nil {
		return "", err
	}
	if password == "" {
		return "", fmt.Errorf("user %q: empty password: %w", user, errdefs.ErrInvalidArgument)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		// Only a password longer than bcrypt's 72 bytes gets here.
		return "", fmt.Errorf("user %q: %v: %w", user, err, errdefs.ErrInvalidArgument)
	}
	return user + ":" + string(hash), nil
}

func validUser(user string) error {
	if user == "" || strings.ContainsAny(user, ":\r\n#") || strings.TrimSpace(user) != user {
		return fmt.Errorf("user name %q: must be non-empty, without ':', '#', line breaks or surrounding spaces: %w",
			user, errdefs.ErrInvalidArgument)
	}
	return nil
}

// SetPassword sets the password of user in the htpasswd file at path,
// replacing the user's line or appending one, and creating the file (mode
// 0600, its directory 0700) if needed. The other lines are kept as they
// are. The file is replaced atomically. An existing file that does not
// parse is left alone and its error returned.
func SetPassword(path, user, password string) error {
	line, err := HashPassword(user, password)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	if _, err := ParseHtpasswd(bytes.NewReader(old)); err != nil {
		return fmt.Errorf("htpasswd file %s: %w", path, err)
	}
	var out bytes.Buffer
	replaced := false
	for l := range strings.Lines(string(old)) {
		l = strings.TrimRight(l, "\r\n")
		// ParseHtpasswd above refused files that list a user twice.
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && name == user {
			l, replaced = line, true
		}
		out.WriteString(l)
		out.WriteByte('\n')
	}
	if !replaced {
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return writeFileAtomic(path, out.Bytes(), 0o600)
}

// CreateDefaultUser makes the default credentials of a fresh root when the
// htpasswd file does not exist yet: user with a random password, whose
// bcrypt line goes to htpasswd and whose clear text goes to passwordFile,
// both 0600 in 0700 directories. The password file is written first, so
// that an interrupted start leaves no htpasswd line without its password:
// the next call makes both again. It reports whether it created them.
func CreateDefaultUser(htpasswd, passwordFile, user string) (bool, error) {
	if _, err := os.Stat(htpasswd); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	if err := writeFileAtomic(passwordFile, []byte(password+"\n"), 0o600); err != nil {
		return false, err
	}
	if err := SetPassword(htpasswd, user, password); err != nil {
		return false, err
	}
	return true, nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
