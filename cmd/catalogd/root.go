package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// The layout of a catalogd root.
const (
	contentDir        = "content"        // the content store: blobs/, ingest/
	databaseFile      = "catalog.db"     // bbolt: manifests, tags, links, uploads
	authDir           = "auth"           // credentials, 0700
	htpasswdFile      = "htpasswd"       // user:bcrypt lines, 0600
	adminPasswordFile = "admin-password" // the generated admin password, 0600
)

func defaultHtpasswd(root string) string { return filepath.Join(root, authDir, htpasswdFile) }

func adminPasswordPath(root string) string { return filepath.Join(root, authDir, adminPasswordFile) }

// root is an open catalog root: its registry over its content store and
// database. Only one process may hold a root, through the bbolt lock.
type root struct {
	dir string
	db  *meta.DB
	reg *catalog.Registry
	// indexBuilt is how long the build of the find index took at open,
	// 0 when the database had one.
	indexBuilt time.Duration
}

// openRoot opens (creating if needed) the catalog at dir. When another
// process holds the database (catalogd serve, or a seed or publish still
// running), it fails with a message that says so.
func openRoot(dir string, opts ...catalog.RegistryOpt) (*root, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("catalog root %s: %w", dir, err)
	}
	db, err := meta.Open(filepath.Join(dir, databaseFile))
	if err != nil {
		if errdefs.IsUnavailable(err) {
			return nil, fmt.Errorf("catalog root %s is in use by another catalogd process: is `catalogd serve` running on it? "+
				"Stop it first (seed and publish write to the root directly), or use another --root: %w", dir, err)
		}
		return nil, fmt.Errorf("catalog root %s: %w", dir, err)
	}
	cs, err := content.NewStore(filepath.Join(dir, contentDir))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("catalog root %s: %w", dir, err), db.Close())
	}
	reg := catalog.NewRegistry(cs, db, opts...)
	// A database of an earlier schema has no find index yet: build it
	// now rather than in the first request.
	start := time.Now()
	built, err := reg.BuildIndex(context.Background())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("catalog root %s: %w", dir, err), db.Close())
	}
	rt := &root{dir: dir, db: db, reg: reg}
	if built {
		rt.indexBuilt = time.Since(start)
	}
	return rt, nil
}

// Close releases the database and its lock.
func (r *root) Close() error { return r.db.Close() }
