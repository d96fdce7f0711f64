//go:build !race

package window_test

// quiescentPoints is how many times TestCountHoldsLastNInTicketOrder checks
// the window once its writers have stopped.
const quiescentPoints = 100_000
