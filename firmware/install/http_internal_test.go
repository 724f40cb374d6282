package install

import "testing"

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 100-199/1000", 100, 1000, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes */1000", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"bytes 5-9", 0, 0, false},
		{"", 0, 0, false},
	} {
		start, size, ok := parseContentRange(tc.in)
		if ok != tc.ok || (ok && (start != tc.start || size != tc.size)) {
			t.Errorf("%q: got %d %d %v", tc.in, start, size, ok)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	// Seeds also in testdata/fuzz/FuzzParseContentRange.
	f.Add("bytes 100-199/1000")
	f.Fuzz(func(t *testing.T, s string) {
		start, size, ok := parseContentRange(s)
		if ok && (start < 0 && size >= 0) {
			t.Fatalf("%q: start %d size %d", s, start, size)
		}
	})
}
