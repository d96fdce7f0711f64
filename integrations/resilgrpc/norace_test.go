//go:build !race

package resilgrpc

const raceEnabled = false
