// Package layergen derives the generated files of the Yocto layer
// meta-kanto from their sources: the gomod:// list from go.sum and the boot
// scripts from firmware/scripts. tools/yoctogen writes them; tools/yoctolint
// checks that the committed files equal what this package derives.
package layergen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kantofw/kanto/tools/internal/gomodsrc"
)

// GoModsInc is the generated include file, relative to the repository root.
const GoModsInc = "meta-kanto/recipes-kanto/kanto/kanto-go-mods.inc"

// Files returns every generated file, keyed by path relative to root. With
// download set, module files missing from modcache are fetched with `go mod
// download` (network to the Go module proxy); without it, they are an error
// wrapping gomodsrc.ErrNotCached.
func Files(root, modcache string, download bool) (map[string][]byte, error) {
	files, err := BootScripts(root)
	if err != nil {
		return nil, err
	}
	inc, err := GoModsIncFile(root, modcache, download)
	if err != nil {
		return nil, err
	}
	files[GoModsInc] = inc
	return files, nil
}

// Stale lists the generated files under root whose content differs from
// files.
func Stale(root string, files map[string][]byte) ([]string, error) {
	var stale []string
	for rel, want := range files {
		have, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !bytes.Equal(have, want) {
			stale = append(stale, rel)
		}
	}
	sort.Strings(stale)
	return stale, nil
}

// GoModsIncFile renders the include file for root's go.sum.
func GoModsIncFile(root, modcache string, download bool) ([]byte, error) {
	f, err := os.Open(filepath.Join(root, "go.sum"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	es, err := gomodsrc.ParseGoSum(f)
	if err != nil {
		return nil, err
	}
	for i, e := range es {
		sum, err := gomodsrc.Checksum(modcache, e)
		if errors.Is(err, gomodsrc.ErrNotCached) && download {
			if err := modDownload(root, e); err != nil {
				return nil, err
			}
			sum, err = gomodsrc.Checksum(modcache, e)
		}
		if err != nil {
			return nil, err
		}
		es[i].SHA256 = sum
	}
	return gomodsrc.Render(es), nil
}

func modDownload(root string, e gomodsrc.Entry) error {
	cmd := exec.Command("go", "mod", "download", "-json", e.Path+"@"+e.Version)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &bytes.Buffer{}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod download %s@%s: %w: %s", e.Path, e.Version, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// GoEnv returns `go env name`.
func GoEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
