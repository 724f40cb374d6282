package install

import "testing"

// FuzzCompareVersions: ordering two versions never panics, is
// antisymmetric, and a version equals itself; an error names a version.
func FuzzCompareVersions(f *testing.F) {
	for _, s := range [][2]string{
		{"1.4.0", "v1.4.0"}, {"2.0.0-rc.1", "2.0.0"}, {"1.0.0+b7", "1.0.0+b3"},
		{"1.2", "1.2.0"}, {"nightly-42", "1.0.0"}, {"", "0.0.1"}, {" 1.0.0 ", "v1.0.0-alpha.beta"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, errA := compareVersions(a, b)
		ba, errB := compareVersions(b, a)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("compare(%q,%q) err %v but reversed err %v", a, b, errA, errB)
		}
		if errA != nil {
			return
		}
		if ab != -ba {
			t.Fatalf("compare(%q,%q) = %d, reversed %d", a, b, ab, ba)
		}
		if c, err := compareVersions(a, a); err != nil || c != 0 {
			t.Fatalf("compare(%q,%q) = %d, %v", a, a, c, err)
		}
	})
}
