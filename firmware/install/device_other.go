//go:build !linux

package install

func isMountedRoot(string) bool    { return false }
func blockDeviceSize(string) int64 { return 0 }
