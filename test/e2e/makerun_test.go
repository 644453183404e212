package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRunCommands runs scripts/run.sh (what `make run` runs) on free
// ports and a fresh state directory, then types each command it prints, as
// a new user would: the exports first, then every cimage and docker line,
// each with the exit code the comment beside it implies.
func TestMakeRunCommands(t *testing.T) {
	state := t.TempDir()
	catAddr, provAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "scripts", "run.sh"))
	cmd.Env = append(os.Environ(), "CP_RUN_STATE="+state, "CP_BIN_DIR="+binDir,
		"CATALOGD_LISTEN="+catAddr, "PROVIDERD_LISTEN="+provAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	var printed []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		printed = append(printed, sc.Text())
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	if len(printed) == 0 || !strings.HasPrefix(printed[len(printed)-1], "Press Ctrl-C") {
		t.Fatalf("make run did not come up:\n%s", strings.Join(printed, "\n"))
	}
	go func() {
		for sc.Scan() {
		}
	}()

	// A second make run while this one runs fails loudly, and says why:
	// on the same addresses, that they are in use; on others, with the
	// same state, that its providerd answers already.
	for _, tc := range []struct {
		name, catAddr, provAddr, want string
	}{
		{"same addresses", catAddr, provAddr, "the address is in use"},
		{"same state", freeAddr(t), freeAddr(t), "another make run uses " + state},
	} {
		second := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "scripts", "run.sh"))
		second.Env = append(os.Environ(), "CP_RUN_STATE="+state, "CP_BIN_DIR="+binDir,
			"CATALOGD_LISTEN="+tc.catAddr, "PROVIDERD_LISTEN="+tc.provAddr)
		out, err := second.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), tc.want) ||
			strings.Contains(string(out), "Press Ctrl-C") {
			t.Fatalf("second make run, %s: %v, want a failure saying %q:\n%s", tc.name, err, tc.want, out)
		}
		t.Logf("second make run, %s: %s", tc.name, lastLine(string(out)))
	}

	var exports []string
	type typed struct {
		line string
		want int
	}
	var commands []typed
	for _, l := range printed {
		l = strings.TrimSpace(l)
		line, comment, _ := strings.Cut(l, "#")
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export "):
			exports = append(exports, line)
		case strings.HasPrefix(line, "cimage "), strings.Contains(line, " cimage "), strings.Contains(line, " docker "):
			want := 0
			if strings.Contains(comment, "refused") {
				want = 4 // cimage's exit code of a conflict
			}
			commands = append(commands, typed{line, want})
		}
	}
	if len(exports) < 2 || len(commands) < 7 {
		t.Fatalf("found %d exports and %d commands in:\n%s", len(exports), len(commands), strings.Join(printed, "\n"))
	}
	_, dockerErr := exec.LookPath("docker")
	for _, c := range commands {
		if strings.Contains(c.line, "docker ") && dockerErr != nil {
			t.Logf("not typed, docker is not installed: %s", c.line)
			continue
		}
		script := strings.Join(exports, "\n") + "\n" + c.line + "\n"
		sh := exec.CommandContext(ctx, "bash", "-c", script)
		sh.Env = os.Environ()
		out, err := sh.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.want {
			t.Fatalf("%s: exit %d, want %d\n%s", c.line, code, c.want, out)
		}
		t.Logf("%s: exit %d", c.line, code)
	}
}
