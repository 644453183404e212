//go:build unix

package listener

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
)

// SocketMode is the mode of every unix socket: the owner and the group may
// connect, nobody else.
const SocketMode = 0o660

// maxSocketPath is the longest path a unix socket may have (sun_path holds
// 108 bytes on Linux, 104 on the BSDs, with the final NUL).
const maxSocketPath = 103

// Unix listens on a unix socket at path with SocketMode, owned by the
// daemon's user and by group gid (or the daemon's own group when gid is
// negative). The directory is created with mode 0755 if it is missing. A
// socket left at path by a daemon that did not stop cleanly is removed;
// anything else at path is refused, never removed.
func Unix(path string, gid int) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is %d bytes, more than the %d a unix socket may have: give a shorter run directory", path, len(path), maxSocketPath)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or give another run directory", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: another providerd is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("stale socket: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// The socket is made under a temporary name, given its mode and group,
	// and only then renamed into place: a connection made through path
	// always meets the final mode, even in the moment after listen(2), when
	// the kernel already queues connections that nobody has accepted yet.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, SocketMode); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("socket group: %w", err))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
}

// unixListener is a socket listening at addr, which it removes when it is
// closed.
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	once sync.Once
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.addr.Name) })
	return err
}

// LookupGroup resolves the group of the sockets: a name or a numeric gid.
// A name that the system does not know is NotFound, so that the caller can
// fall back to the daemon's own group.
func LookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}
