//go:build !race

package provider

// raceEnabled reports that the race detector is on.
const raceEnabled = false
