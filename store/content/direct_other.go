//go:build !linux

package content

import "os"

// openDirect returns nil: direct I/O is only used on Linux, and every read
// and write goes through the page cache.
func openDirect(path string, flag int) *os.File { return nil }

// openDirectFile returns nil, as openDirect does.
func openDirectFile(f *os.File, flag int) *os.File { return nil }

// pageCached cannot tell what the page cache holds here.
func pageCached(f *os.File, off, n int64) (cached, ok bool) { return false, false }

// startWriteback is a no-op where sync_file_range(2) does not exist: the
// fsync of Commit writes the whole blob.
func startWriteback(f *os.File, off, n int64) {}

// waitWriteback is a no-op where sync_file_range(2) does not exist.
func waitWriteback(f *os.File, off, n int64) {}
