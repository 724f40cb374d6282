//go:build race

package ota_test

// raceEnabled trims the kill tests under -race: every child is a
// race-instrumented binary, slow to start, and the agent runs in one
// goroutine there, so the full matrix adds minutes and no race coverage.
const raceEnabled = true
