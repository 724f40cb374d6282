//go:build !unix

package bootenv

// lockFile is a no-op where flock does not exist; writes stay atomic, but
// concurrent writers are not serialized.
func lockFile(string) (func(), error) { return func() {}, nil }
