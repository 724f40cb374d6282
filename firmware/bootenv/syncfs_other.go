//go:build !linux

package bootenv

import "os"

// syncFS: only the directory fsync of writeFileAtomic elsewhere.
func syncFS(*os.File) error { return nil }
