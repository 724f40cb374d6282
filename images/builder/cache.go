package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// cache keeps each build step's outputs in a directory named after the
// SHA-256 of the step's inputs (file contents, parameters, tool versions),
// so an unchanged input never reruns its step. Entries are created in a
// temp directory and renamed into place, so a killed build leaves no half
// entry behind.
type cache struct {
	dir string
}

// key hashes the parts of a step's inputs in order.
type key struct{ h hashWriter }

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newKey(step string) *key {
	k := &key{h: sha256.New()}
	k.str("step", step)
	return k
}

func (k *key) str(name, v string) *key {
	fmt.Fprintf(k.h, "%s=%d:%s\n", name, len(v), v)
	return k
}

func (k *key) file(name, path string) (*key, error) {
	sum, err := fileHash(path)
	if err != nil {
		return k, err
	}
	return k.str(name, sum), nil
}

func (k *key) sum() string { return hex.EncodeToString(k.h.Sum(nil)) }

// fileHashes memoises file hashes for one build (inputs are hashed by
// several steps).
var fileHashes sync.Map

func fileHash(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	memo := fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
	if v, ok := fileHashes.Load(memo); ok {
		return v.(string), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	fileHashes.Store(memo, sum)
	return sum, nil
}

// get returns the entry directory of step/key, producing it with make if
// absent. hit reports a cache hit.
func (c *cache) get(step string, k *key, make func(dir string) error) (dir string, hit bool, err error) {
	sum := k.sum()
	dir = filepath.Join(c.dir, step+"-"+sum[:20])
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // recently used: prune keeps it
		return dir, true, nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-"+step+"-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	if err := make(tmp); err != nil {
		return "", false, fmt.Errorf("%s: %w", step, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".done"), []byte(sum+"\n"), 0o644); err != nil {
		return "", false, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	return dir, false, nil
}

// pruneAge is how long an unused entry stays: other builds sharing the
// cache (parallel test packages, a developer's make image) may be using
// entries this build does not know about.
const pruneAge = time.Hour

// prune removes entries of step other than keep that nobody has used for
// pruneAge, so the cache does not grow without bound.
func (c *cache) prune(step string, keep ...string) {
	ents, _ := filepath.Glob(filepath.Join(c.dir, step+"-*"))
	sort.Strings(ents)
	for _, e := range ents {
		used := false
		for _, k := range keep {
			if e == k {
				used = true
			}
		}
		st, err := os.Stat(e)
		if !used && err == nil && time.Since(st.ModTime()) > pruneAge {
			_ = os.RemoveAll(e)
		}
	}
}
