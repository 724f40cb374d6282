//go:build !race

package ota_test

const raceEnabled = false
