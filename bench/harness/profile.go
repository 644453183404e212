package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// CPUTime returns the user and system CPU time that process pid has used
// so far, threads included, read from /proc/<pid>/stat.
func CPUTime(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted here start after its closing one.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15 of stat(5), 12 and 13 after
	// the name.
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	// The kernel counts in clock ticks of USER_HZ, 100 on Linux.
	const tick = 10 * time.Millisecond
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

// Perf is a perf record(1) of some processes, with call graphs, that runs
// until Stop.
type Perf struct {
	cmd *exec.Cmd
	out string
}

// StartPerf starts perf record of the processes pids, sampling at 1999 Hz
// with frame-pointer call graphs (Go keeps frame pointers on amd64 and
// arm64), into the file out. It fails where perf is not installed.
func StartPerf(out string, pids ...int) (*Perf, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd := exec.Command(bin, "record", "-q", "-F", "1999", "-g", "-o", out, "-p", strings.Join(ps, ","))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// perf attaches to the processes after it starts: give it that time,
	// so that the first samples are not lost.
	time.Sleep(300 * time.Millisecond)
	return &Perf{cmd: cmd, out: out}, nil
}

// Stop ends the recording (perf writes its file on SIGINT) and waits for
// it.
func (p *Perf) Stop() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	err := p.cmd.Wait()
	if _, serr := os.Stat(p.out); serr != nil {
		return fmt.Errorf("perf record: %v: %w", err, serr)
	}
	return nil
}

// Report returns perf report's flat profile of the recording: the share of
// the samples of each command, shared object and symbol, down to min
// percent.
func (p *Perf) Report(min float64) (string, error) {
	out, err := exec.Command("perf", "report", "-i", p.out, "--stdio", "--no-children", "-g", "none",
		"--sort", "comm,dso,sym", "--percent-limit", strconv.FormatFloat(min, 'f', 1, 64)).Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	var sb strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		sb.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	return sb.String(), nil
}
