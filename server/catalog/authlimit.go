package catalog

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the limit on failed authentications (WithAuthFailureLimit).
const (
	DefaultAuthFailures   = 5
	DefaultAuthFailWindow = time.Minute
)

// Bounds of the limiter.
const (
	// maxLockoutShift caps the doubling of lock-outs: the longest is
	// window<<maxLockoutShift, 16 windows.
	maxLockoutShift = 4
	// maxAuthClients bounds the limiter's table of client addresses.
	maxAuthClients = 10000
	// authLogLinesPerSecond bounds the log lines about failed
	// authentications, all clients together.
	authLogLinesPerSecond = 10
)

// authLimiter limits the failed authentications of each client, so that
// guessing passwords is slow for the guesser and cheap for the server. It
// is safe for concurrent use; every method is O(1).
//
// A client is the remote address of the connection (never a header such
// as X-Forwarded-For, which the client writes): an IPv4 address, or the
// /64 of an IPv6 address, since one host usually holds a whole /64.
//
// The rule:
//   - A client may fail limit verifications within window, counted from
//     its first failure; the count starts again once window has passed.
//   - The failure that reaches limit locks the client out for window the
//     first time. Each further lock-out doubles it, up to 16 windows.
//   - While locked out, every attempt with credentials is refused at once,
//     before the cache and before bcrypt, the right password included;
//     those refusals do not extend the lock-out.
//   - At most limit minus the failures so far may be verified at once, so
//     parallel guesses cannot overshoot the limit.
//   - A success forgets the client. So does quiet: no failure for window
//     (for a client never locked out), or, after a lock-out, for the
//     longest lock-out (16 windows) since its end.
//
// The table holds at most maxClients clients; a new one evicts the least
// recently used. A spray of addresses therefore costs bounded memory, and
// each address of the spray gets at most limit guesses per window, which
// the verification slots of Htpasswd keep from starving other requests.
type authLimiter struct {
	limit      int
	window     time.Duration
	maxClients int
	now        func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*list.Element // of *authClient
	lru     list.List                      // most recently used at the front
	logs    logBudget
}

// authClient is the record of one client.
type authClient struct {
	key      netip.Prefix
	failures int       // failed verifications in the current window
	since    time.Time // start of the current window: its first failure
	last     time.Time // the last failure
	pending  int       // verifications under way
	lockouts int       // lock-outs since the client was last forgotten
	until    time.Time // end of the current lock-out
	unlogged int       // failures and refusals not logged since the client's last line
}

// newAuthLimiter returns a limiter of limit failures per window, over at
// most maxClients clients; values below 1 are read as 1.
func newAuthLimiter(limit int, window time.Duration, maxClients int) *authLimiter {
	return &authLimiter{
		limit:      max(1, limit),
		window:     max(1, window),
		maxClients: max(1, maxClients),
		now:        time.Now,
		clients:    map[netip.Prefix]*list.Element{},
	}
}

// clientKey is the limiter's key of a connection's remote address
// ("ip:port", as net/http's Request.RemoteAddr has it). An address that
// does not parse gets the zero Prefix, one key shared by all such
// clients.
func clientKey(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// clientName is how logs and messages name a client: the address for
// IPv4, the /64 for IPv6.
func clientName(key netip.Prefix) string {
	switch {
	case !key.IsValid():
		return "unknown"
	case key.Addr().Is4():
		return key.Addr().String()
	}
	return key.String()
}

// allowed reports whether key may try credentials now; when it may not,
// it returns how long the lock-out lasts.
func (l *authLimiter) allowed(key netip.Prefix) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.get(key, now, false)
	if c == nil || !now.Before(c.until) {
		return 0, true
	}
	c.unlogged++
	return c.until.Sub(now), false
}

// reserve asks for one verification of key's credentials with bcrypt.
// When refused it returns how long to wait; otherwise the caller must end
// the verification with release.
func (l *authLimiter) reserve(key netip.Prefix) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.get(key, now, true)
	if now.Before(c.until) {
		c.unlogged++
		return c.until.Sub(now), false
	}
	l.roll(c, now)
	if c.failures+c.pending >= l.limit {
		// Verifications under way may reach the limit; they end soon.
		c.unlogged++
		return time.Second, false
	}
	c.pending++
	return 0, true
}

// verifyOutcome is how a reserved verification ended.
type verifyOutcome int

const (
	verifySucceeded verifyOutcome = iota
	verifyFailed
	verifyAbandoned // the request ended or the slots stayed busy: it proves nothing
)

// authEvent is what a failure tells the log. Only the first failure of a
// window and each lock-out get a line, within the global budget; the rest
// is counted in unlogged and reported with the client's next line.
type authEvent struct {
	log        bool
	failures   int           // in the window, this one included
	lockout    time.Duration // > 0 when this failure locked the client out
	unlogged   int           // the client's failures and refusals since its last line
	suppressed int           // lines of all clients dropped by the budget since the last line
}

// release ends a verification that reserve allowed.
func (l *authLimiter) release(key netip.Prefix, outcome verifyOutcome) authEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if outcome == verifySucceeded {
		l.forget(key)
		return authEvent{}
	}
	// A client evicted meanwhile starts again with this verification.
	c := l.get(key, now, true)
	c.pending = max(0, c.pending-1)
	if outcome == verifyAbandoned {
		if c.pending == 0 && c.failures == 0 && c.lockouts == 0 && c.unlogged == 0 {
			l.forget(key)
		}
		return authEvent{}
	}
	l.roll(c, now)
	if c.failures == 0 {
		c.since = now
	}
	c.failures++
	c.last = now
	ev := authEvent{failures: c.failures}
	if c.failures >= l.limit {
		c.lockouts++
		ev.lockout = l.window << min(c.lockouts-1, maxLockoutShift)
		c.until = now.Add(ev.lockout)
		c.failures = 0
	}
	if ev.failures == 1 || ev.lockout > 0 {
		if ev.suppressed, ev.log = l.logs.take(now); ev.log {
			ev.unlogged, c.unlogged = c.unlogged, 0
			return ev
		}
	}
	c.unlogged++
	return authEvent{}
}

// succeeded records a success that needed no verification (a cached one).
func (l *authLimiter) succeeded(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forget(key)
}

// size is the number of clients in the table.
func (l *authLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// get returns the record of key, marked most recently used, after
// forgetting it if it has been quiet long enough. With create it makes a
// missing one, evicting the least recently used record when the table is
// full; without, it may return nil. The caller holds mu.
func (l *authLimiter) get(key netip.Prefix, now time.Time, create bool) *authClient {
	if e, ok := l.clients[key]; ok {
		c := e.Value.(*authClient)
		if !l.quiet(c, now) {
			l.lru.MoveToFront(e)
			return c
		}
		l.forget(key)
	}
	if !create {
		return nil
	}
	for len(l.clients) >= l.maxClients {
		l.forget(l.lru.Back().Value.(*authClient).key)
	}
	c := &authClient{key: key}
	l.clients[key] = l.lru.PushFront(c)
	return c
}

// quiet reports whether c can be forgotten: nothing under way, and no
// failure nor lock-out for window, or for the longest lock-out once c has
// been locked out.
func (l *authLimiter) quiet(c *authClient, now time.Time) bool {
	if c.pending > 0 {
		return false
	}
	memory, since := l.window, c.last
	if c.lockouts > 0 {
		memory = l.window << maxLockoutShift
	}
	if c.until.After(since) {
		since = c.until
	}
	return now.Sub(since) >= memory
}

// roll starts a new window of failures when the current one has passed.
func (l *authLimiter) roll(c *authClient, now time.Time) {
	if c.failures > 0 && now.Sub(c.since) >= l.window {
		c.failures = 0
	}
}

func (l *authLimiter) forget(key netip.Prefix) {
	if e, ok := l.clients[key]; ok {
		l.lru.Remove(e)
		delete(l.clients, key)
	}
}

// logBudget lets through at most authLogLinesPerSecond lines each second
// and counts the others.
type logBudget struct {
	start   time.Time
	lines   int
	dropped int
}

// take reports whether a line may be logged now, and how many were
// dropped since the last one that was.
func (b *logBudget) take(now time.Time) (int, bool) {
	if now.Sub(b.start) >= time.Second {
		b.start, b.lines = now, 0
	}
	if b.lines >= authLogLinesPerSecond {
		b.dropped++
		return 0, false
	}
	b.lines++
	dropped := b.dropped
	b.dropped = 0
	return dropped, true
}
