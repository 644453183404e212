package meta

import (
	"time"
)

// DefaultMaxResident is the default of WithMaxResident: how much
// file-backed memory the process keeps mapped before the database's
// mapping is trimmed.
const DefaultMaxResident = 64 << 20

// trimInterval is how often the resident set is checked.
const trimInterval = 500 * time.Millisecond

// WithMaxResident bounds how much of the database's memory map stays in
// the process's resident set (0 turns the bound off; the default is
// DefaultMaxResident).
//
// bbolt reads the file through a shared, read-only memory map of all of
// it. Every page a transaction reads, and the pages around it that the
// kernel maps on a fault, stay in the process's page tables: a catalog of
// 200,000 manifests, once listed or filled, counts its whole database of
// several hundred MiB in the process's RSS, though the kernel can reclaim
// those pages at any time. Every trimInterval, when the process's
// file-backed resident memory (RssFile) is above n, the mapping is dropped
// from the page tables (Linux: madvise MADV_DONTNEED). The pages stay in
// the page cache, and the next read of one maps it again: a minor fault,
// no I/O. Nothing else changes: the data is the file's, which is the same.
// On other systems this does nothing.
func WithMaxResident(n int64) Opt { return func(o *options) { o.maxResident = max(n, 0) } }

// startTrim runs the trim loop of db until Close, when limit > 0 and the
// system can trim.
func (db *DB) startTrim(limit int64) {
	if limit <= 0 || !canTrim {
		return
	}
	db.stopTrim = make(chan struct{})
	db.trimDone = make(chan struct{})
	go func() {
		defer close(db.trimDone)
		t := time.NewTicker(trimInterval)
		defer t.Stop()
		for {
			select {
			case <-db.stopTrim:
				return
			case <-t.C:
			}
			if rss, err := fileResident(); err == nil && rss > limit {
				_ = db.trim()
			}
		}
	}()
}

// endTrim stops the trim loop, if any, and waits for it.
func (db *DB) endTrim() {
	if db.stopTrim == nil {
		return
	}
	close(db.stopTrim)
	<-db.trimDone
	db.stopTrim = nil
}
