//go:build race

package window_test

// quiescentPoints is how many times TestCountHoldsLastNInTicketOrder checks
// the window once its writers have stopped: fewer under the race detector,
// which slows the writers about tenfold (and, by slowing them, makes them
// overlap more, so that fewer rounds find as much).
const quiescentPoints = 25_000
