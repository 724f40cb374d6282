//go:build !race

package cmtest

const raceEnabled = false
