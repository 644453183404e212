package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartTied is Start, and the process also gets sig when this program
// dies, even by SIGKILL, where the platform allows it (Linux), so that a
// long-running command that is killed leaves no daemon behind.
func (p *Procs) StartTied(sig syscall.Signal, bin string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	setPdeathsig(cmd, sig)
	logf, err := os.OpenFile(filepath.Join(p.LogDir, filepath.Base(bin)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	// The child holds its own copy of the descriptor.
	logf.Close()
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, cmd)
	return cmd, nil
}

// WaitFor calls check until it returns nil, for up to timeout; the error
// names what and the last failure.
func WaitFor(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %w", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WriteToken writes a random bearer token (32 bytes, in hex) to path with
// mode 0600 and returns it.
func WriteToken(path string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	// WriteFile keeps the mode of a file that already exists.
	if err := os.Chmod(path, 0o600); err != nil {
		return "", err
	}
	return token, nil
}

// RSS returns the resident set size of a process (VmRSS), in bytes, read
// from /proc.
func RSS(pid int) (int64, error) { return StatusBytes(pid, "VmRSS") }

// StatusBytes returns a size field of /proc/<pid>/status (VmRSS, VmHWM,
// RssAnon, RssFile...), in bytes.
func StatusBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// OpenFDs returns the number of open file descriptors of a process: the
// entries of /proc/<pid>/fd.
func OpenFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// CountFiles returns the number of entries that match the glob pattern.
func CountFiles(pattern string) (int, error) {
	m, err := filepath.Glob(pattern)
	return len(m), err
}

// FileSize returns the size of a file in bytes.
func FileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// FDKinds counts the open file descriptors of a process by what they
// refer to: "socket", "pipe", "anon_inode" (epoll, eventfd...), "file"
// (a path) or "other".
func FDKinds(pid int) (map[string]int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	kinds := map[string]int{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			// Closed since the listing.
			continue
		}
		switch {
		case strings.HasPrefix(target, "socket:"):
			kinds["socket"]++
		case strings.HasPrefix(target, "pipe:"):
			kinds["pipe"]++
		case strings.HasPrefix(target, "anon_inode:"):
			kinds["anon_inode"]++
		case strings.HasPrefix(target, "/"):
			kinds["file"]++
		default:
			kinds["other"]++
		}
	}
	return kinds, nil
}

// HasFlag reports whether bin, run with args and -h, lists the flag name
// (without dashes) in its usage, so that a caller can pass a flag that only
// newer builds have. A usage that cannot be read counts as no.
func HasFlag(bin, name string, args ...string) bool {
	cmd := exec.Command(bin, append(args, "-h")...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}()
	// flag's usage exits with 0 or 2 after -h; the text is what counts.
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "-"+name || f[0] == "--"+name) {
			return true
		}
	}
	return false
}
