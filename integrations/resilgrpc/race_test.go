//go:build race

package resilgrpc

// raceEnabled: the race detector allocates, and drops what sync.Pool
// holds, so allocation counts mean nothing under it.
const raceEnabled = true
