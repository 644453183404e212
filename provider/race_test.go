//go:build race

package provider

// raceEnabled reports that the race detector, which slows the code it
// instruments about tenfold, is on: tests that measure scale down.
const raceEnabled = true
