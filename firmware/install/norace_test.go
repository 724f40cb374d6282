//go:build !race

package install_test

// Bounds of TestInstallMemoryBounded; bench/fw-install.sh aims at < 32 MiB.
const (
	raceEnabled         = false
	maxInstallRSS       = 64 << 20
	maxInstallRSSGrowth = 16 << 20
)
