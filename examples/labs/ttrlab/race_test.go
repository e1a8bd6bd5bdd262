//go:build race

package main

// raceEnabled says the tests run with the race detector, so the arpcheck
// binary the test builds gets it too (and shares the build cache with the
// end-to-end tests of cmd/arpcheck).
const raceEnabled = true
