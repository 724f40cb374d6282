//go:build race

package cmtest

// raceEnabled builds the kanto binary with the race detector when the tests
// themselves run with -race, so the daemon's goroutines are checked too.
const raceEnabled = true
