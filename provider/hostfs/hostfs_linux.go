package hostfs

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// AsUser returns the FS of u. When u is the daemon's own user it is OS().
// Otherwise the daemon must run as root, and every operation runs on an OS
// thread of its own whose filesystem uid and gid and supplementary groups
// are u's for the length of the operation: setfsuid(2), setfsgid(2) and
// setgroups(2) made as raw system calls change the calling thread only (Go's
// syscall.Setgroups changes every thread, which is why it is not used).
// A thread whose rights could not be restored is never reused: its
// goroutine ends locked to it, and the runtime ends the thread.
func AsUser(u User) (FS, error) {
	euid := os.Geteuid()
	if uint32(euid) == u.UID && uint32(os.Getegid()) == u.GID {
		return OS(), nil
	}
	if euid != 0 {
		return nil, fmt.Errorf("providerd runs as uid %d and cannot open files with the rights of uid %d: %w", euid, u.UID, errdefs.ErrPermissionDenied)
	}
	return fsys{run: func(fn func() error) error { return runAs(u, fn) }}, nil
}

// runAs runs fn on a fresh locked thread with u's file system rights.
func runAs(u User, fn func() error) error {
	type result struct {
		err      error
		switched error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := switchTo(u)
		if err != nil {
			if restore() == nil {
				runtime.UnlockOSThread()
			}
			done <- result{switched: err}
			return
		}
		ferr := fn()
		if restore() == nil {
			runtime.UnlockOSThread()
		}
		done <- result{err: ferr}
	}()
	r := <-done
	if r.switched != nil {
		return fmt.Errorf("taking the rights of uid %d: %w", u.UID, r.switched)
	}
	return r.err
}

// switchTo gives the calling thread u's groups, then its fsgid and fsuid,
// and returns the function that puts the daemon's back.
func switchTo(u User) (restore func() error, err error) {
	oldGroups, err := unix.Getgroups()
	if err != nil {
		return func() error { return nil }, err
	}
	oldGID, oldUID := os.Getegid(), os.Geteuid()
	restore = func() error {
		// Back to the daemon's fsuid first: it gives the thread its file
		// capabilities again.
		unix.Setfsuid(oldUID)
		unix.Setfsgid(oldGID)
		if err := unix.Setgroups(oldGroups); err != nil {
			return err
		}
		if cur, _ := unix.SetfsuidRetUid(-1); cur != oldUID {
			return fmt.Errorf("fsuid is %d after restoring %d", cur, oldUID)
		}
		if cur, _ := unix.SetfsgidRetGid(-1); cur != oldGID {
			return fmt.Errorf("fsgid is %d after restoring %d", cur, oldGID)
		}
		return nil
	}
	groups := make([]int, 0, len(u.Groups))
	for _, g := range u.Groups {
		groups = append(groups, int(g))
	}
	if err := unix.Setgroups(groups); err != nil {
		return restore, fmt.Errorf("setgroups: %w", err)
	}
	// setfsgid and setfsuid report no error: read the value back.
	unix.Setfsgid(int(u.GID))
	if cur, _ := unix.SetfsgidRetGid(-1); cur != int(u.GID) {
		return restore, fmt.Errorf("setfsgid(%d) did not take", u.GID)
	}
	unix.Setfsuid(int(u.UID))
	if cur, _ := unix.SetfsuidRetUid(-1); cur != int(u.UID) {
		return restore, fmt.Errorf("setfsuid(%d) did not take", u.UID)
	}
	return restore, nil
}

// ProcessGroups reads the supplementary groups of a running process from
// /proc/PID/status, checking that its real and effective uid is uid: a
// socket's peer credentials carry the uid, gid and pid of the peer, not its
// groups. The pid is that of a process holding the connection open, so it
// names the peer while the request lasts.
func ProcessGroups(pid int32, uid uint32) ([]uint32, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("groups of process %d: %w", pid, err)
	}
	defer f.Close()
	var groups []uint32
	sawUID, sawGroups := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid":
			// real, effective, saved, filesystem
			if len(fields) < 2 || fields[0] != strconv.FormatUint(uint64(uid), 10) || fields[1] != fields[0] {
				return nil, fmt.Errorf("process %d is no longer uid %d: %w", pid, uid, errdefs.ErrPermissionDenied)
			}
			sawUID = true
		case "Groups":
			for _, g := range fields {
				n, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("groups of process %d: %q: %w", pid, g, err)
				}
				groups = append(groups, uint32(n))
			}
			sawGroups = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("groups of process %d: %w", pid, err)
	}
	if !sawUID || !sawGroups {
		return nil, fmt.Errorf("groups of process %d: no Uid or Groups line in its status", pid)
	}
	return groups, nil
}
