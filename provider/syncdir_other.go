//go:build !unix

package provider

import "os"

// syncDir makes a rename in dir durable; errors are ignored, since some
// file systems refuse to sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
