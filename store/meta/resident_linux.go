package meta

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

const canTrim = true

// trim drops the database's memory map from the process's page tables.
// It runs in a read transaction, which holds bbolt's mmap lock: the mapping
// cannot move or go while it runs, and it covers at least the
// transaction's size.
func (db *DB) trim() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		addr, size := db.bolt.Info().Data, uintptr(tx.Size())
		if size == 0 {
			return nil
		}
		// A syscall on the address, not a slice: the mapping is bbolt's,
		// and shared and read-only, so MADV_DONTNEED only unmaps pages
		// that the next read maps again from the page cache.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, size, unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise of the database map: %w", errno)
		}
		return nil
	})
}

// fileResident is the process's file-backed and shared resident memory in
// bytes: the third field of /proc/self/statm, in pages.
func fileResident() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return 0, fmt.Errorf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
