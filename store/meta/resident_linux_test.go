package meta

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// filledDB is a database of about 32 MiB of values in v1/uploads, opened
// with opts, and the checksum of its values.
func filledDB(t *testing.T, opts ...Opt) (*DB, [32]byte) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "meta.db"), append([]Opt{WithNoSync()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	rng := rand.NewChaCha8([32]byte{5, 6})
	val := make([]byte, 1000)
	for batch := range 8 {
		err := db.Update(context.Background(), func(tx *bolt.Tx) error {
			b := GetUploadsBucket(tx)
			for i := range 4000 {
				_, _ = rng.Read(val)
				if err := b.Put(fmt.Appendf(nil, "%02d-%05d", batch, i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return db, readAll(t, db)
}

// readAll reads every value, which maps every page, and returns their
// checksum.
func readAll(t *testing.T, db *DB) [32]byte {
	t.Helper()
	h := sha256.New()
	err := db.View(context.Background(), func(tx *bolt.Tx) error {
		return GetUploadsBucket(tx).ForEach(func(k, v []byte) error {
			h.Write(k)
			h.Write(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func resident(t *testing.T) int64 {
	t.Helper()
	n, err := fileResident()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTrimDropsTheMap: a trim takes the pages of the map out of the
// resident set, and the data reads the same after it.
func TestTrimDropsTheMap(t *testing.T) {
	db, sum := filledDB(t, WithMaxResident(0))
	before := resident(t)
	if err := db.trim(); err != nil {
		t.Fatal(err)
	}
	after := resident(t)
	t.Logf("file-backed resident memory: %d MiB before the trim, %d MiB after", before>>20, after>>20)
	if before-after < 16<<20 {
		t.Fatalf("the trim freed %d KiB of the resident set, want at least 16 MiB of the 32 MiB read", (before-after)>>10)
	}
	if readAll(t, db) != sum {
		t.Fatal("the values read differently after the trim")
	}
}

// TestMaxResidentTrims: the loop of WithMaxResident trims a map that is
// above the bound within two of its intervals. A trim that falls inside
// the read spoils an attempt, so it gets five.
func TestMaxResidentTrims(t *testing.T) {
	db, sum := filledDB(t, WithMaxResident(1)) // any file-backed page is too many
	var peak, low int64
	for range 5 {
		if readAll(t, db) != sum {
			t.Fatal("the values read differently under the trims")
		}
		peak = resident(t)
		time.Sleep(2 * trimInterval)
		if low = resident(t); peak-low >= 16<<20 {
			return
		}
	}
	t.Fatalf("file-backed resident memory %d MiB after a read of 32 MiB, %d MiB %s later", peak>>20, low>>20, 2*trimInterval)
}

// TestTrimUnderLoad: trims while readers read and a writer writes leave
// every read whole (run it with -race).
func TestTrimUnderLoad(t *testing.T) {
	db, sum := filledDB(t, WithMaxResident(0))
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 3 {
		wg.Go(func() {
			for range 50 {
				select {
				case <-stop:
					return
				default:
				}
				if got := readAll(t, db); got != sum {
					errs <- fmt.Errorf("a read under trims gave another checksum")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			select {
			case <-stop:
				return
			default:
			}
			// Another bucket, so that the readers' values stay the same.
			err := db.Update(ctx, func(tx *bolt.Tx) error {
				return GetSourcesBucket(tx).Put(fmt.Appendf(nil, "s%03d", i), make([]byte, 3000))
			})
			if err != nil {
				errs <- err
				return
			}
		}
	})
	for range 100 {
		if err := db.trim(); err != nil {
			t.Error(err)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
