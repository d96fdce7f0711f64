//go:build !race

package bench

// raceEnabled reports whether the race detector is on: the scenarios that
// send requests over loopback make fewer of them under it, which slows
// every request several times over.
const raceEnabled = false
