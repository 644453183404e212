//go:build !windows

package provider

// hostOSVersion is unknown off Windows: every os.version is taken as
// runnable, and the highest is chosen.
func hostOSVersion() string { return "" }
