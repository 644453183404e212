package catalog

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestAuthLimiter runs scripts of attempts by one client against a limiter
// of 5 failures per minute. The steps of a script:
//
//	F      a verification the limiter allows, which fails
//	S      a verification the limiter allows, which succeeds
//	C      a success from the cache (no verification)
//	A      a verification the limiter allows, abandoned
//	P      a verification the limiter allows, left under way
//	X      the oldest verification under way ends in a failure
//	O      the client is allowed to try
//	L<d>   the client is locked out, for d (a Go duration)
//	R      allowed, but the verifications under way reach the limit: wait 1 s
//	+<d>   time passes
func TestAuthLimiter(t *testing.T) {
	for _, tc := range []struct {
		name, script string
	}{
		{"locked out at the limit", "F F F F O F L1m"},
		{"the lock-out lasts one window", "F F F F F L1m +59s L1s +1s O F"},
		{"refusals do not extend the lock-out", "F F F F F +30s L30s L30s L30s +30s O"},
		{"a success resets the count", "F F F F S F F F F O F L1m"},
		{"a cached success resets the count", "F F F F C F F F F O F L1m"},
		{"failures older than the window are forgotten", "F F F F +1m F F F F O F L1m"},
		{"the window starts at the first failure", "F +50s F F F +10s F F F F O F L1m"},
		{"lock-outs double up to 16 windows", "F F F F F L1m +1m F F F F F L2m +2m F F F F F L4m +4m " +
			"F F F F F L8m +8m F F F F F L16m +16m F F F F F L16m"},
		{"remembered until quiet for 16 windows after the lock-out", "F F F F F +1m +15m59s F F F F F L2m"},
		{"forgotten after 16 quiet windows", "F F F F F +1m +16m F F F F F L1m"},
		{"a success forgets the lock-outs", "F F F F F +1m S F F F F F L1m"},
		{"parallel verifications cannot overshoot", "F F P P P R R X O X X L1m"},
		{"abandoned verifications count for nothing", "A A A A A A F F F F O F L1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newAuthLimiter(5, time.Minute, 100)
			l.now = clock.now
			key := clientKey("192.0.2.1:1234")
			pending := 0
			for i, step := range strings.Fields(tc.script) {
				where := fmt.Sprintf("step %d %q of %q", i+1, step, tc.script)
				reserve := func() {
					t.Helper()
					if wait, ok := l.allowed(key); !ok {
						t.Fatalf("%s: locked out for %v", where, wait)
					}
					if wait, ok := l.reserve(key); !ok {
						t.Fatalf("%s: reservation refused (%v)", where, wait)
					}
				}
				switch op, arg := step[0], step[1:]; op {
				case 'F':
					reserve()
					l.release(key, verifyFailed)
				case 'S':
					reserve()
					l.release(key, verifySucceeded)
				case 'A':
					reserve()
					l.release(key, verifyAbandoned)
				case 'C':
					if _, ok := l.allowed(key); !ok {
						t.Fatalf("%s: locked out", where)
					}
					l.succeeded(key)
				case 'P':
					reserve()
					pending++
				case 'X':
					if pending == 0 {
						t.Fatalf("%s: nothing under way", where)
					}
					pending--
					l.release(key, verifyFailed)
				case 'O':
					if wait, ok := l.allowed(key); !ok {
						t.Fatalf("%s: locked out for %v", where, wait)
					}
				case 'L':
					want, err := time.ParseDuration(arg)
					if err != nil {
						t.Fatal(err)
					}
					wait, ok := l.allowed(key)
					if ok || wait != want {
						t.Fatalf("%s: allowed=%v wait=%v, want locked out for %v", where, ok, wait, want)
					}
					if _, ok := l.reserve(key); ok {
						t.Fatalf("%s: a locked-out client got a reservation", where)
					}
				case 'R':
					if _, ok := l.allowed(key); !ok {
						t.Fatalf("%s: locked out", where)
					}
					if wait, ok := l.reserve(key); ok || wait != time.Second {
						t.Fatalf("%s: reserve = %v, %v; want refused for 1s", where, wait, ok)
					}
				case '+':
					d, err := time.ParseDuration(arg)
					if err != nil {
						t.Fatal(err)
					}
					clock.advance(d)
				default:
					t.Fatalf("bad step %q", step)
				}
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		name, remote, want string
	}{
		{"IPv4", "192.0.2.7:41000", "192.0.2.7"},
		{"IPv4 loopback", "127.0.0.1:5000", "127.0.0.1"},
		{"IPv6 is grouped by /64", "[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"IPv6 zone dropped", "[fe80::1%eth0]:443", "fe80::/64"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"not an address", "pipe", "unknown"},
		{"a host name is not trusted either", "example.com:80", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientName(clientKey(tc.remote)); got != tc.want {
				t.Fatalf("clientName(clientKey(%q)) = %q, want %q", tc.remote, got, tc.want)
			}
		})
	}
}

// sprayAddr is the i-th address of a spray: distinct IPv4 addresses for
// i < 2^24.
func sprayAddr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:40000", i>>16&0xff, i>>8&0xff, i&0xff)
}

// TestAuthLimiterBounded sprays failures from 100,000 addresses: the table
// never holds more than its bound, its memory stays bounded, and the
// client that keeps failing (the most recently used) stays locked out.
func TestAuthLimiterBounded(t *testing.T) {
	const spray = 100000
	clock := newFakeClock()
	l := newAuthLimiter(5, time.Minute, maxAuthClients)
	l.now = clock.now
	attacker := clientKey("192.0.2.1:1")
	for range 5 {
		l.reserve(attacker)
		l.release(attacker, verifyFailed)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	biggest := 0
	for i := range spray {
		key := clientKey(sprayAddr(i))
		if _, ok := l.reserve(key); !ok {
			t.Fatalf("address %d: a first attempt was refused", i)
		}
		l.release(key, verifyFailed)
		if i%100 == 0 {
			// The attacker keeps trying, which keeps its record recent.
			if _, ok := l.allowed(attacker); ok {
				t.Fatalf("after %d sprayed addresses the attacker is no longer locked out", i)
			}
		}
		if i%1000 == 0 {
			biggest = max(biggest, l.size())
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	biggest = max(biggest, l.size())
	if biggest > maxAuthClients {
		t.Fatalf("the table held %d clients, bound %d", biggest, maxAuthClients)
	}
	if l.lru.Len() != l.size() {
		t.Fatalf("LRU list of %d elements for %d clients", l.lru.Len(), l.size())
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d addresses sprayed: %d clients in the table, heap grown by %d KiB", spray, l.size(), grown/1024)
	// 10,000 records take about 2 MiB; 100,000 would take about ten times more.
	if grown > 8<<20 {
		t.Fatalf("the heap grew by %d MiB over the spray", grown>>20)
	}
}

// TestAuthLogBudget: a spray of failures from many addresses logs at most
// authLogLinesPerSecond lines each second; the next line says how many
// were dropped.
func TestAuthLogBudget(t *testing.T) {
	clock := newFakeClock()
	l := newAuthLimiter(5, time.Minute, maxAuthClients)
	l.now = clock.now
	lines := 0
	for i := range 1000 {
		key := clientKey(sprayAddr(i))
		l.reserve(key)
		if ev := l.release(key, verifyFailed); ev.log {
			lines++
		}
	}
	if lines != authLogLinesPerSecond {
		t.Fatalf("%d lines for 1000 first failures within one second, want %d", lines, authLogLinesPerSecond)
	}
	clock.advance(time.Second)
	key := clientKey(sprayAddr(5000))
	l.reserve(key)
	ev := l.release(key, verifyFailed)
	if !ev.log || ev.suppressed != 1000-authLogLinesPerSecond {
		t.Fatalf("next second: %+v, want a line that reports %d suppressed", ev, 1000-authLogLinesPerSecond)
	}

	// One client: its first failure and its lock-out, and nothing else.
	key = clientKey("192.0.2.200:1")
	logged := 0
	for range 5 {
		l.reserve(key)
		if l.release(key, verifyFailed).log {
			logged++
		}
	}
	for range 100 {
		l.allowed(key)
	}
	clock.advance(time.Minute)
	var last authEvent
	for range 5 {
		l.reserve(key)
		if ev := l.release(key, verifyFailed); ev.log {
			logged++
			last = ev
		}
	}
	if logged != 4 {
		t.Fatalf("%d lines for two windows of 5 failures, want 4 (a first failure and a lock-out each)", logged)
	}
	if last.lockout != 2*time.Minute || last.unlogged != 3 {
		t.Fatalf("second lock-out %+v, want 2m with 3 unlogged failures", last)
	}
}

func TestAuthLimiterConcurrent(t *testing.T) {
	l := newAuthLimiter(5, time.Minute, 64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 100)}), 32)
				if _, ok := l.allowed(key); !ok {
					continue
				}
				if _, ok := l.reserve(key); ok {
					l.release(key, verifyOutcome(i%3))
				}
			}
		})
	}
	wg.Wait()
	if n := l.size(); n > 64 || n != l.lru.Len() {
		t.Fatalf("%d clients, %d in the LRU list, bound 64", n, l.lru.Len())
	}
}
