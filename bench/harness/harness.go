// Package harness holds what the benchmark commands of bench/ share:
// starting and stopping servers on 127.0.0.1, medians, the machine's floor
// (sha256 and a synced write of the same bytes) and size formatting.
package harness

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Procs starts long-running processes and stops them all at the end.
type Procs struct {
	// LogDir receives one <binary>.log per process.
	LogDir string
	procs  []*exec.Cmd
}

// Start starts bin with args and extra environment.
func (p *Procs) Start(bin string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.OpenFile(filepath.Join(p.LogDir, filepath.Base(bin)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.procs = append(p.procs, cmd)
	return cmd, nil
}

// Stop interrupts the process pid that Start started and waits for it,
// killing it after 10 s.
func (p *Procs) Stop(pid int) error {
	for i, c := range p.procs {
		if c.Process.Pid == pid {
			interrupt(c)
			p.procs = append(p.procs[:i], p.procs[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("no process %d", pid)
}

// StopAll interrupts every process and waits for it, killing it after 10 s.
func (p *Procs) StopAll() {
	for _, c := range p.procs {
		interrupt(c)
	}
	p.procs = nil
}

// interrupt interrupts c and waits for it, killing it after 10 s.
func interrupt(c *exec.Cmd) {
	c.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.Process.Kill()
		<-done
	}
}

// Run runs bin to completion with a 15-minute limit; its output is kept
// only for the error.
func Run(env []string, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(15 * time.Minute):
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return nil
}

// Step prints a progress line on stderr.
func Step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// WaitReady waits up to 30 s for url to answer 200.
func WaitReady(url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within 30 s", url)
}

// Median runs f runs times and returns the median of its results.
func Median(runs int, f func() (float64, error)) (float64, error) {
	var xs []float64
	for range runs {
		x, err := f()
		if err != nil {
			return 0, err
		}
		xs = append(xs, x)
	}
	return MedianOf(xs), nil
}

// Contender is one measurement of a round: Run returns MB/s.
type Contender struct {
	Name string
	Run  func() (float64, error)
}

// Rounds runs each contender once per round, for runs rounds, prints every
// result, and returns the median of each contender's results, in the order
// given. Interleaving the contenders puts them all under the same drift of
// a noisy machine (a virtual disk or host memory that is fast in one minute
// and slow in the next), which back-to-back runs of one contender would
// charge to it alone. The order changes from round to round, rotated by one
// and reversed every other round, so that no contender always follows the
// same one (whose writeback or freed pages it would meet every time).
func Rounds(runs int, cs ...Contender) ([]float64, error) {
	xs := make([][]float64, len(cs))
	for r := range runs {
		for k := range cs {
			i := (r + k) % len(cs)
			if r%2 == 1 {
				i = (r + len(cs) - 1 - k) % len(cs)
			}
			x, err := cs[i].Run()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cs[i].Name, err)
			}
			fmt.Fprintf(os.Stderr, "    round %d: %s %.0f MB/s\n", r+1, cs[i].Name, x)
			xs[i] = append(xs[i], x)
		}
	}
	out := make([]float64, len(cs))
	for i := range xs {
		out[i] = MedianOf(xs[i])
	}
	return out, nil
}

// MedianOf is the median of xs (0 for none). xs is sorted in place.
func MedianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// MBps is n bytes over d, in 10^6 bytes per second.
func MBps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// HashFiles returns the sha256 rate over the files, in MB/s.
func HashFiles(paths ...string) (float64, error) {
	var n int64
	start := time.Now()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		m, err := io.CopyBuffer(sha256.New(), struct{ io.Reader }{f}, make([]byte, 1<<20))
		f.Close()
		if err != nil {
			return 0, err
		}
		n += m
	}
	return MBps(n, time.Since(start)), nil
}

// WarmStore reads every blob of the content store at root once (through
// HashFiles), so that the server under test serves them from the page
// cache to every contender alike: its writes go straight to disk
// (O_DIRECT), so without this the first contender of a run would also pay
// for reading them from disk.
func WarmStore(root string) error {
	paths, err := filepath.Glob(filepath.Join(root, "blobs", "*", "*"))
	if err != nil {
		return err
	}
	_, err = HashFiles(paths...)
	return err
}

// Evict drops the files' pages from the page cache (after Settle, so that
// they are clean), so that the next read of them comes from disk, as it
// does for a blob written with O_DIRECT or a file copied from another host.
func Evict(paths ...string) error {
	Settle()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if err != nil {
			return fmt.Errorf("evict %s: %w", p, err)
		}
	}
	return nil
}

// SyncedCopy writes the bytes of the files to dir, fsyncs each, and returns
// the rate in MB/s. The copies are removed. It starts after Settle.
func SyncedCopy(dir string, paths ...string) (float64, error) {
	var n int64
	Settle()
	start := time.Now()
	for i, src := range paths {
		dst := filepath.Join(dir, fmt.Sprintf("floor-%d.copy", i))
		m, err := syncedCopy(src, dst)
		os.Remove(dst)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return MBps(n, time.Since(start)), nil
}

func syncedCopy(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(out, struct{ io.Reader }{in}, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// ParseSize reads "1GiB", "256MiB", "4KiB" or plain bytes.
func ParseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseInt(strings.TrimSuffix(s, u.suffix), 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}

// Human formats a byte count.
func Human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// PeakRSS returns the peak resident set size of a process (VmHWM), in
// bytes, read from /proc.
func PeakRSS(pid int) (int64, error) { return StatusBytes(pid, "VmHWM") }

// Settle flushes every dirty page of the machine to disk, so that a timed
// run does not pay for the writeback of the one before it (a peer that
// does not fsync leaves its bytes for the next run to flush).
func Settle() { syscall.Sync() }

// WriteReport prints a bench's Markdown report and, when out is not
// empty, writes it to the file out too.
func WriteReport(report, out string) error {
	fmt.Print(report)
	if out == "" {
		return nil
	}
	return os.WriteFile(out, []byte(report), 0o644)
}
