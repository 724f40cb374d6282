// Command yoctogen regenerates the generated files of the Yocto layer
// meta-kanto from the sources they derive from:
//
//   - meta-kanto/recipes-kanto/kanto/kanto-go-mods.inc, the gomod:// entries
//     of every module version in go.sum (checksums from the local module
//     cache; versions missing there are fetched with `go mod download`);
//   - meta-kanto/wic/kanto-grub.cfg and the U-Boot boot scripts under
//     meta-kanto/recipes-bsp/kanto-boot/files/, from firmware/scripts.
//
// Run it from the repository root after changing go.sum:
//
//	go run ./tools/yoctogen
//
// tools/yoctolint fails while the generated files are out of date.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kantofw/kanto/tools/internal/gomodsrc"
)

// GoModsInc is the generated include file, relative to the repository root.
const GoModsInc = "meta-kanto/recipes-kanto/kanto/kanto-go-mods.inc"

func main() {
	root := flag.String("root", ".", "repository root")
	check := flag.Bool("check", false, "only report whether the generated files are up to date (exit 1 if not)")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "yoctogen:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	modcache, err := goEnv("GOMODCACHE")
	if err != nil {
		return err
	}
	files, err := bootScripts(root)
	if err != nil {
		return err
	}
	inc, err := goModsInc(root, modcache, true)
	if err != nil {
		return err
	}
	files[GoModsInc] = inc
	var stale []string
	for rel, want := range files {
		path := filepath.Join(root, rel)
		have, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if bytes.Equal(have, want) {
			continue
		}
		if check {
			stale = append(stale, rel)
			continue
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			return err
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("out of date (run go run ./tools/yoctogen): %s", strings.Join(stale, ", "))
	}
	return nil
}

// goModsInc renders the include file for root's go.sum. With download set,
// module files missing from the cache are fetched first.
func goModsInc(root, modcache string, download bool) ([]byte, error) {
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

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}
