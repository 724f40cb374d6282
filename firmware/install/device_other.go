//go:build !linux

package install

func mountedAt(string) string      { return "" }
func blockDeviceSize(string) int64 { return 0 }
