//go:build !race

package resilhttp

const raceEnabled = false
