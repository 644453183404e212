package provider

import (
	"fmt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// storageError gives err the class InsufficientStorage when the filesystem
// refused a write for want of space or quota (ENOSPC, EDQUOT), naming the
// root and what was being written; any other error comes back as it is.
func storageError(err error, root, what string) error {
	if err == nil || errdefs.IsInsufficientStorage(err) || !isNoSpace(err) {
		return err
	}
	return fmt.Errorf("Not enough space on %s to write %s: %w: %w", root, what, errdefs.ErrInsufficientStorage, err)
}

// spaceGuard refuses writes that would leave the filesystem of root with
// less than reserve bytes free. It asks the filesystem at most once per
// checkEvery bytes counted, so a guarded copy costs one statfs(2) per
// interval.
type spaceGuard struct {
	root       string
	what       string
	reserve    int64
	checkEvery int64
	free       func(path string) (uint64, error)
	next       int64 // count at which the next check is due
}

// spaceCheckInterval is how many bytes a guarded write goes between two
// looks at the free space. The reserve must be well above it.
const spaceCheckInterval = 8 << 20

// newSpaceGuard makes the guard of writes of what under the provider's
// root, keeping p.diskMargin free.
func (p *Provider) newSpaceGuard(what string) *spaceGuard {
	return &spaceGuard{root: p.root, what: what, reserve: p.diskMargin, checkEvery: spaceCheckInterval, free: p.freeSpace}
}

// check looks at the free space once count bytes have been written since
// the guard was made (0 for a look before the first byte). A filesystem
// whose free space is unknown is not checked.
func (g *spaceGuard) check(count int64) error {
	if count < g.next {
		return nil
	}
	g.next = count + g.checkEvery
	free, err := g.free(g.root)
	if err != nil {
		return nil
	}
	if need := g.reserve + g.checkEvery; free < uint64(need) {
		return fmt.Errorf("Not enough space on %s to write %s: %s free, %s are kept in reserve: %w",
			g.root, g.what, formatBytes(free), formatBytes(uint64(g.reserve)), errdefs.ErrInsufficientStorage)
	}
	return nil
}
