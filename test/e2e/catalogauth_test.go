package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// authAttempt is the answer to one write with Basic credentials.
type authAttempt struct {
	status     int
	code       string // of the OCI error envelope
	retryAfter int    // seconds; 0 when absent
	took       time.Duration
}

// tryPush starts an upload with user and password through client, and
// reads the answer.
func tryPush(t *testing.T, client *http.Client, c *catalogd, user, password string) (authAttempt, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.URL("/v2/authlimit/blobs/uploads/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return authAttempt{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := authAttempt{status: resp.StatusCode, took: time.Since(start)}
	var env struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		a.code = env.Errors[0].Code
	}
	a.retryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	return a, nil
}

// clientFrom is an HTTP client whose connections leave from the loopback
// address ip, so that catalogd sees another client address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2},
		Timeout:   time.Minute,
	}
}

func medianOf(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestCatalogAuthLimit runs the real catalogd with a 5 s window of failed
// authentications. Wrong passwords from 127.0.0.1 are refused with 429
// and Retry-After after five, quickly and without bcrypt, while anonymous
// reads of a seeded manifest keep their latency; a spray of guesses from
// other loopback addresses, which runs bcrypt at its default cost, leaves
// the reads fast too; and the right password works once the lock-out
// ends.
func TestCatalogAuthLimit(t *testing.T) {
	c := startCatalogdSeeded(t, []string{"--base-layer-size", "64KiB", "--app-layer-size", "4KiB"},
		"--auth-fail-window", "5s")
	if c.Password == "" {
		t.Fatal("no admin password in the root")
	}
	readClient := &http.Client{Timeout: time.Minute}
	read := func() time.Duration {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, c.URL("/v2/nanoserver/manifests/latest"), nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		start := time.Now()
		resp, err := readClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET the seeded manifest: %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	// reads samples the read latency n times, 20 ms apart.
	reads := func(n int) time.Duration {
		t.Helper()
		var d []time.Duration
		for range n {
			d = append(d, read())
			time.Sleep(20 * time.Millisecond)
		}
		return medianOf(d)
	}
	read() // warm up
	idle := reads(40)

	local := &http.Client{Timeout: time.Minute}
	var verified []time.Duration
	for i := range 5 {
		a, err := tryPush(t, local, c, c.User, fmt.Sprintf("wrong %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i+1, a.status)
		}
		verified = append(verified, a.took)
	}
	first, err := tryPush(t, local, c, c.User, c.Password)
	if err != nil {
		t.Fatal(err)
	}
	if first.status != http.StatusTooManyRequests || first.code != "TOOMANYREQUESTS" || first.retryAfter < 1 || first.retryAfter > 5 {
		t.Fatalf("after 5 failures, the right password: %+v; want 429 TOOMANYREQUESTS, Retry-After 1-5", first)
	}

	// A flood of wrong passwords from 127.0.0.1 while reads are measured.
	var (
		mu          sync.Mutex
		refusals    []time.Duration
		lastRefusal time.Time
		lastRetry   int
		others      atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	floodStart := time.Now()
	for g := range 4 {
		wg.Go(func() {
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a, err := tryPush(t, local, c, c.User, fmt.Sprintf("flood %d-%d", g, i))
				if err != nil {
					others.Add(1)
					return
				}
				if a.status != http.StatusTooManyRequests {
					others.Add(1)
					continue
				}
				mu.Lock()
				refusals = append(refusals, a.took)
				lastRefusal, lastRetry = time.Now(), a.retryAfter
				mu.Unlock()
			}
		})
	}
	underFlood := reads(40)
	close(stop)
	wg.Wait()
	floodTook := time.Since(floodStart)
	if others.Load() != 0 {
		t.Fatalf("%d answers of the flood were not 429 while 127.0.0.1 was locked out", others.Load())
	}
	refusedPerSecond := float64(len(refusals)) / floodTook.Seconds()
	t.Logf("5 verified guesses: median %v each; then %d guesses refused with 429 in %v (%.0f/s), median %v each",
		medianOf(verified).Round(time.Millisecond), len(refusals), floodTook.Round(time.Millisecond), refusedPerSecond,
		medianOf(refusals).Round(10*time.Microsecond))
	t.Logf("median manifest GET: idle %v, under the flood from 127.0.0.1 %v",
		idle.Round(10*time.Microsecond), underFlood.Round(10*time.Microsecond))
	if m := medianOf(refusals); len(refusals) < 20 || m > medianOf(verified)/3 {
		t.Fatalf("%d refusals, median %v: want many, each far quicker than a bcrypt verification (%v)", len(refusals), m, medianOf(verified))
	}
	if limit := 5*idle + 25*time.Millisecond; underFlood > limit {
		t.Fatalf("median read under the flood %v, idle %v: over %v", underFlood, idle, limit)
	}

	// A spray from other loopback addresses: each gets its 5 verified
	// guesses, so bcrypt runs all along, in catalogd's bounded slots.
	if probe, err := clientFrom("127.0.0.2").Get(c.URL("/v2/")); err != nil {
		t.Logf("cannot connect from 127.0.0.2 (%v): no spray from other addresses", err)
	} else {
		probe.Body.Close()
		var sprayed, sprayRefused atomic.Int64
		stop := make(chan struct{})
		for g := range 4 {
			wg.Go(func() {
				for host := 1; host < 250; host++ {
					client := clientFrom(fmt.Sprintf("127.0.%d.%d", 10+g, host))
					for i := range 6 {
						select {
						case <-stop:
							return
						default:
						}
						a, err := tryPush(t, client, c, c.User, fmt.Sprintf("spray %d", i))
						if err != nil {
							return
						}
						switch a.status {
						case http.StatusUnauthorized:
							sprayed.Add(1)
						case http.StatusTooManyRequests:
							sprayRefused.Add(1)
						}
					}
					client.CloseIdleConnections()
				}
			})
		}
		sprayStart := time.Now()
		underSpray := reads(40)
		close(stop)
		wg.Wait()
		t.Logf("median manifest GET under a spray from other addresses: %v (%d guesses verified, %.1f/s; %d refused)",
			underSpray.Round(10*time.Microsecond), sprayed.Load(), float64(sprayed.Load())/time.Since(sprayStart).Seconds(), sprayRefused.Load())
		if sprayed.Load() == 0 {
			t.Fatal("the spray verified no guess")
		}
		if limit := 5*idle + 25*time.Millisecond; underSpray > limit {
			t.Fatalf("median read under the spray %v, idle %v: over %v", underSpray, idle, limit)
		}
	}

	// The lock-out of 127.0.0.1 ends when its last Retry-After said.
	if lastRetry > 0 {
		wait := time.Until(lastRefusal.Add(time.Duration(lastRetry) * time.Second))
		if wait > 30*time.Second {
			t.Fatalf("Retry-After %d s", lastRetry)
		}
		time.Sleep(wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.URL("/v2/authlimit/blobs/uploads/"), nil)
	req.SetBasicAuth(c.User, c.Password)
	resp, err := local.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the right password after the lock-out: %d, want 202", resp.StatusCode)
	}
	// The success reset the count: a wrong password is verified (401)
	// again, not refused.
	if a, err := tryPush(t, local, c, c.User, "wrong again"); err != nil || a.status != http.StatusUnauthorized {
		t.Fatalf("a wrong password after the reset: %+v %v, want 401", a, err)
	}
}
