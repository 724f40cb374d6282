//go:build race

package install_test

// raceEnabled: the child installer of TestInstallMemoryBounded is
// race-instrumented, its shadow memory and the race runtime add a fixed
// share to the peak RSS, so the absolute bound is looser; the growth bound
// stays the point of the test. The zstd case is left out (slow under
// -race, and its peak moves with the race runtime's bookkeeping: 54 and
// 64 MiB, against 20 and 20 MiB for 32 MiB and 1 GiB without -race).
const (
	raceEnabled         = true
	maxInstallRSS       = 128 << 20
	maxInstallRSSGrowth = 16 << 20
)
