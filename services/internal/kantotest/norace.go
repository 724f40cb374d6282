//go:build !race

package kantotest

const raceEnabled = false
