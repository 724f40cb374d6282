package install

import (
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// canonicalVersion returns v as a semantic version with the "v" prefix
// golang.org/x/mod/semver wants ("1.4.0" and "v1.4.0" are the same
// version), or "" if v is not one.
func canonicalVersion(v string) string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return v
}

// compareVersions orders two firmware versions by semantic-version
// precedence (build metadata ignored, pre-releases before their release).
// Free-text versions cannot be ordered: the downgrade policy then fails
// closed rather than guess.
func compareVersions(a, b string) (int, error) {
	ca, cb := canonicalVersion(a), canonicalVersion(b)
	if ca == "" || cb == "" {
		bad := a
		if ca != "" {
			bad = b
		}
		return 0, fmt.Errorf("version %q is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])", bad)
	}
	return semver.Compare(ca, cb), nil
}
