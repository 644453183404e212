package provider

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/store/meta"
)

// writeLease adds digests to the lease owner, in one transaction of
// v1/leases/<owner>. It holds gcMu for reading, so that a collection has
// either marked the blobs before it or swept before they are leased: a
// blob leased and found in the store afterwards stays there until the
// lease goes.
func (p *Provider) writeLease(ctx context.Context, owner string, digests []digest.Digest) error {
	p.gcMu.RLock()
	defer p.gcMu.RUnlock()
	return p.db.Batch(ctx, func(tx *bolt.Tx) error {
		b, err := meta.CreateJobLeasesBucket(tx, owner)
		if err != nil {
			return err
		}
		for _, d := range digests {
			if err := b.Put([]byte(d), []byte{}); err != nil {
				return fmt.Errorf("lease %s of %s: %w", d, owner, err)
			}
		}
		return nil
	})
}

// blobLease keeps blobs from garbage collection while an operation of this
// process reads or writes them outside any image record: a save reading
// its images, a load or a commit from the first blob it commits to its
// record. Install jobs lease under their own id, which outlives a restart;
// the leases of operations do not (New deletes them). It is not safe for
// concurrent use.
type blobLease struct {
	p     *Provider
	owner string
	// collections is p.collections when the lease was taken: a
	// collection that ran while the lease was held may have spared blobs
	// for it alone.
	collections uint64
}

// lease takes a new lease of kind ("save", "load", "commit") on digests.
// The caller releases it.
func (p *Provider) lease(ctx context.Context, kind string, digests []digest.Digest) (*blobLease, error) {
	l := &blobLease{p: p, owner: kind + "-" + newJobID()}
	p.gcMu.RLock()
	l.collections = p.collections
	p.gcMu.RUnlock()
	if err := p.writeLease(ctx, l.owner, digests); err != nil {
		return nil, fmt.Errorf("%s: lease: %w", kind, err)
	}
	return l, nil
}

// add leases more digests.
func (l *blobLease) add(ctx context.Context, digests []digest.Digest) error {
	return l.p.writeLease(ctx, l.owner, digests)
}

// release deletes the lease, whatever happened to ctx. When a collection
// ran while it was held, or collect is set (the operation failed after it
// committed blobs), it then collects the garbage, so that the blobs the
// lease alone kept are freed now rather than at the next removal.
func (l *blobLease) release(ctx context.Context, collect bool) {
	p := l.p
	ctx = context.WithoutCancel(ctx)
	err := p.db.Update(ctx, func(tx *bolt.Tx) error {
		return meta.DeleteJobLeasesBucket(tx, l.owner)
	})
	if err != nil {
		// New deletes it at the next start.
		p.log.WithError(err).WithField("lease", l.owner).Warn("lease not released")
		return
	}
	p.gcMu.RLock()
	ran := p.collections != l.collections
	p.gcMu.RUnlock()
	if !collect && !ran {
		return
	}
	if _, _, err := p.collectGarbage(ctx); err != nil {
		p.log.WithError(err).WithField("lease", l.owner).Warn("garbage collection after a lease failed")
	}
}
