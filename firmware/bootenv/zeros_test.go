package bootenv_test

import "os"

func writeZeros(path string, n int) error { return os.WriteFile(path, make([]byte, n), 0o644) }
