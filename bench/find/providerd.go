package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/bench/harness"
)

// provd is a providerd started for the bench, with one source.
type provd struct {
	addr, token string
	pid         int
	started     time.Time
	c           *client.Client
}

// startProviderd starts a providerd on a free 127.0.0.1 port, with the
// source src (NAME=URL) and a bearer token.
func startProviderd(procs *harness.Procs, bin, work, label, src string) (*provd, error) {
	p, err := launchProviderd(procs, bin, work, label, src)
	if err != nil {
		return nil, err
	}
	return p, harness.WaitFor("providerd "+label, time.Minute, func() error {
		_, err := p.c.Sources(context.Background())
		return err
	})
}

// launchProviderd starts a providerd as startProviderd does, with extra
// flags, and does not wait for it. A providerd started again with the
// same label keeps its root and token.
func launchProviderd(procs *harness.Procs, bin, work, label, src string, extra ...string) (*provd, error) {
	root := filepath.Join(work, "providerd-"+label)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(work, "token-"+label)
	var token string
	if b, err := os.ReadFile(tokenFile); err == nil {
		token = strings.TrimSpace(string(b))
	} else if token, err = harness.WriteToken(tokenFile); err != nil {
		return nil, err
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &provd{addr: addr, token: token, started: time.Now()}
	args := append([]string{"serve", "--root", root, "--run-dir", filepath.Join(work, "run-"+label),
		"--listen", addr, "--token-file", tokenFile, "--source", src}, extra...)
	cmd, err := procs.Start(filepath.Join(bin, "providerd"), nil, args...)
	if err != nil {
		return nil, err
	}
	p.pid = cmd.Process.Pid
	if p.c, err = client.New("http://"+addr, client.WithToken(token)); err != nil {
		return nil, err
	}
	return p, nil
}

// waitSynced waits until the index of the source name is complete, and
// returns how long after the start of providerd that was, and its entries.
func (p *provd) waitSynced(name string, timeout time.Duration) (time.Duration, int, error) {
	var took time.Duration
	var entries int
	err := harness.WaitFor("the first sync of "+name, timeout, func() error {
		ss, err := p.c.Sources(context.Background())
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.Name == name && s.Status != nil && s.Status.Complete {
				took, entries = time.Since(p.started), s.Status.Entries
				return nil
			}
			if s.Name == name && s.Status != nil && s.Status.LastError != "" {
				return fmt.Errorf("sync failed: %s", s.Status.LastError)
			}
		}
		return fmt.Errorf("not complete yet")
	})
	return took, entries, err
}

// measureFind GETs /v1/find?name=name n times with the token.
func (p *provd) measureFind(hc *http.Client, name string, n int) ([]time.Duration, int, error) {
	return measureWith(hc, "http://"+p.addr+"/v1/find?name="+name, n, http.Header{"Authorization": {"Bearer " + p.token}})
}

// installs runs `cimage install NAME --required-version V` for each
// version, end to end (process start to exit), and returns the times.
func (p *provd) installs(bin, name string, versions []string) ([]time.Duration, error) {
	var out []time.Duration
	for _, v := range versions {
		cmd := exec.Command(filepath.Join(bin, "cimage"), "--endpoint", "http://"+p.addr, "--token", p.token,
			"install", name, "--required-version", v)
		start := time.Now()
		b, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("cimage install %s %s: %v: %s", name, v, err, b)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// craneLoop times `crane catalog` and then `crane ls` of every repository
// it lists, one after the other, as a script over the registry would.
func craneLoop(crane, registry string) (time.Duration, int, error) {
	start := time.Now()
	b, err := exec.Command(crane, "catalog", "--insecure", registry).Output()
	if err != nil {
		return 0, 0, fmt.Errorf("crane catalog: %w", err)
	}
	repos := strings.Fields(string(b))
	tags := 0
	for _, r := range repos {
		out, err := exec.Command(crane, "ls", "--insecure", registry+"/"+r).Output()
		if err != nil {
			return 0, 0, fmt.Errorf("crane ls %s: %w", r, err)
		}
		tags += len(strings.Fields(string(out)))
	}
	return time.Since(start), tags, nil
}

// anonPeak samples the anonymous resident memory (RssAnon: the heap and
// stacks, not the pages of files mapped, such as bbolt's database) of
// processes every 100 ms and keeps the highest of each.
type anonPeak struct {
	mu   sync.Mutex
	pids map[int]int64
	stop chan struct{}
}

func newAnonPeak() *anonPeak {
	a := &anonPeak{pids: map[int]int64{}, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
			}
			a.mu.Lock()
			for pid, peak := range a.pids {
				if n, err := harness.StatusBytes(pid, "RssAnon"); err == nil && n > peak {
					a.pids[pid] = n
				}
			}
			a.mu.Unlock()
		}
	}()
	return a
}

func (a *anonPeak) watch(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pids[pid] = 0
}

func (a *anonPeak) peak(pid int) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pids[pid]
}
