package yoctolint

import (
	"os"
	"path/filepath"
	"testing"
)

// repoRoot is the repository root (two levels above this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

func recipes(t *testing.T) []*Recipe {
	t.Helper()
	rs, err := LoadRecipes(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) == 0 {
		t.Fatal("no recipes found in meta-kanto")
	}
	return rs
}

func recipe(t *testing.T, pn string) *Recipe {
	t.Helper()
	for _, r := range recipes(t) {
		if r.PN == pn && !r.Append {
			return r
		}
	}
	t.Fatalf("recipe %s not found", pn)
	return nil
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
