// Package meta is the bbolt metadata database shared by catalogd and
// providerd.
//
// The schema is drawn in buckets.go, next to the bucket keys and the helpers
// that reach each bucket. Open creates the tree and runs the migrations of
// migrations.go. Every transaction goes through (*DB).View and (*DB).Update,
// which check the context first. Update functions must not do file I/O,
// fsync or network calls: do those before the transaction and publish
// events after it. Byte slices read inside a transaction are valid only
// until it ends, so copy them (bytes.Clone) before returning them.
package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// DefaultLockTimeout is how long Open waits for the file lock held by
// another process before it gives up.
const DefaultLockTimeout = 2 * time.Second

// DB is an open metadata database. It is safe for concurrent use: bbolt
// runs any number of read transactions next to one write transaction.
type DB struct {
	path string
	bolt *bolt.DB
	// stopTrim and trimDone run the trim loop of WithMaxResident.
	stopTrim, trimDone chan struct{}
}

type options struct {
	lockTimeout time.Duration
	noSync      bool
	maxResident int64
}

// Opt sets an option of Open.
type Opt func(*options)

// WithLockTimeout sets how long Open waits for the file lock. It must be
// positive; DefaultLockTimeout is used otherwise.
func WithLockTimeout(d time.Duration) Opt {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// WithNoSync skips the fsync after each write transaction. A crash may then
// lose recent transactions, so it is meant for throw-away databases only.
func WithNoSync() Opt { return func(o *options) { o.noSync = true } }

// Open opens or creates the database file at path, creates the bucket tree
// and migrates it to SchemaVersion.
//
// Only one process may open a file at a time: when another process holds
// it, Open waits for the lock timeout and then returns an ErrUnavailable
// error that names the file. A file written by a newer schema version gives
// ErrFailedPrecondition. The caller closes the DB.
func Open(path string, opts ...Opt) (*DB, error) {
	o := options{lockTimeout: DefaultLockTimeout, maxResident: DefaultMaxResident}
	for _, opt := range opts {
		opt(&o)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      o.lockTimeout,
		NoSync:       o.noSync,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("metadata database %s is locked by another process (waited %s): %w",
				path, o.lockTimeout, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("open metadata database %s: %w", path, err)
	}
	// A lone Batch waits this long for others to share its commit; at
	// bbolt's default (10 ms) a layerless install, a handful of commits,
	// would wait longer than it works.
	bdb.MaxBatchDelay = maxBatchDelay
	db := &DB{path: path, bolt: bdb}
	if err := bdb.Update(func(tx *bolt.Tx) error { return migrate(tx, migrations) }); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("metadata database %s: %w", path, err)
	}
	db.startTrim(o.maxResident)
	return db, nil
}

// Path is the file the database was opened from.
func (db *DB) Path() string { return db.path }

// Close releases the file and its lock. Transactions still running finish
// first.
func (db *DB) Close() error {
	db.endTrim()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close metadata database %s: %w", db.path, err)
	}
	return nil
}

// View runs fn in a read-only transaction, unless ctx is already done. The
// error of fn is returned as is.
func (db *DB) View(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}

// maxBatchDelay is how long a Batch waits for others to join it.
const maxBatchDelay = 2 * time.Millisecond

// Batch runs fn in a read-write transaction that it may share with other
// Batch calls made at the same time, so that they pay for one commit (one
// fsync) together, as bbolt's Batch does: under load, writes of many
// goroutines commit at once, and a lone call waits at most maxBatchDelay. fn must be idempotent: when another function of
// the batch fails, fn runs again on its own. Otherwise as Update.
func (db *DB) Batch(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Batch(fn)
}

// Update runs fn in a read-write transaction, unless ctx is already done.
// The transaction commits when fn returns nil and rolls back otherwise; the
// error of fn is returned as is. fn must not do file I/O, fsync or network
// calls, since it holds the database's single write lock.
func (db *DB) Update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(fn)
}
