//go:build race

package resilience_test

// raceEnabled reports whether the race detector is on: the longest
// tests make fewer calls under it.
const raceEnabled = true
