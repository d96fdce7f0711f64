// Package testcheck holds two checks that the core module's tests share:
// Diff, a readable report of how two values differ, and VerifyTestMain
// and VerifyNone, which fail a test run that leaves goroutines behind.
//
// It imports the standard library only, and only tests import it, so that
// the core's go.mod requires no module for its tests and a program that
// requires the core finds no test-only module in its module graph.
package testcheck
