package softwareupdate

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Installed dependencies live under <storage>/installed-deps/: every
// *.prs file at depth ≤1 describes one, with key=value lines group, name,
// version (required) and type (SU:internal/storage/storage.go, utils.go).

// ParsePRS parses one .prs file.
func ParsePRS(data []byte) (DependencyDescribe, error) {
	var d DependencyDescribe
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "group":
			d.Group = v
		case "name":
			d.Name = v
		case "version":
			d.Version = v
		case "type":
			d.Type = v
		}
	}
	if d.Group == "" || d.Name == "" || d.Version == "" {
		return d, fmt.Errorf("group, name and version are required: %w", ErrInvalidPayload)
	}
	return d, nil
}

// depsDir is the installed dependencies folder.
func depsDir(storage string) string { return filepath.Join(storage, "installed-deps") }

// prsFile is a dependency with the file that describes it.
type prsFile struct {
	Dep  DependencyDescribe
	Path string
}

// loadDeps reads every *.prs at depth ≤1, sorted by path.
func loadDeps(storage string) ([]prsFile, error) {
	root := depsDir(storage)
	var out []prsFile
	for _, pat := range []string{"*.prs", "*/*.prs"} {
		files, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			d, err := ParsePRS(data)
			if err != nil {
				continue // upstream skips files it cannot use
			}
			out = append(out, prsFile{Dep: d, Path: f})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// collectDeps moves <dir>/<sub> (default installed-deps) into the
// installed dependencies, replacing entries of the same name.
func collectDeps(storage, dir, sub string) error {
	if sub == "" {
		sub = "installed-deps"
	}
	src, err := safeJoin(dir, sub)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	root := depsDir(storage)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		dst := filepath.Join(root, e.Name())
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(src, e.Name()), dst); err != nil {
			return err
		}
	}
	return nil
}

// writePRS records a dependency as <installed-deps>/<name>.prs.
func writePRS(storage string, d DependencyDescribe) error {
	root := depsDir(storage)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	body := fmt.Sprintf("group=%s\nname=%s\nversion=%s\n", d.Group, d.Name, d.Version)
	if d.Type != "" {
		body += "type=" + d.Type + "\n"
	}
	return atomicWrite(filepath.Join(root, d.Name+".prs"), []byte(body))
}

// removeDeps deletes the dependencies matching want (name, and group and
// version when given); a dependency in a subfolder takes the folder along.
func removeDeps(storage string, want DependencyDescribe) (int, error) {
	deps, err := loadDeps(storage)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range deps {
		d := p.Dep
		if d.Name != want.Name || (want.Group != "" && d.Group != want.Group) || (want.Version != "" && d.Version != want.Version) {
			continue
		}
		target := p.Path
		if filepath.Dir(p.Path) != depsDir(storage) {
			target = filepath.Dir(p.Path)
		}
		if err := os.RemoveAll(target); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// atomicWrite writes a file through a temp file, fsync and rename.
func atomicWrite(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
