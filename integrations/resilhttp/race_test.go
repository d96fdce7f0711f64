//go:build race

package resilhttp

// raceEnabled: the race detector allocates, so allocation counts mean
// nothing under it.
const raceEnabled = true
