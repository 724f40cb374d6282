// Command yoctogen regenerates the generated files of the Yocto layer
// meta-kanto from the sources they derive from (package
// tools/internal/layergen):
//
//   - meta-kanto/recipes-kanto/kanto/kanto-go-mods.inc, the gomod:// entries
//     of every module version in go.sum (checksums from the local module
//     cache; versions missing there are fetched with `go mod download`);
//   - meta-kanto/files/wic/kanto-grub.cfg and the U-Boot boot scripts under
//     meta-kanto/recipes-bsp/kanto-boot/files/, from firmware/scripts.
//
// Run it from the repository root after changing go.sum or firmware/scripts:
//
//	go run ./tools/yoctogen
//
// tools/yoctolint fails while the generated files are out of date.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kantofw/kanto/tools/internal/layergen"
)

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
	modcache, err := layergen.GoEnv("GOMODCACHE")
	if err != nil {
		return err
	}
	files, err := layergen.Files(root, modcache, !check)
	if err != nil {
		return err
	}
	stale, err := layergen.Stale(root, files)
	if err != nil {
		return err
	}
	if check {
		if len(stale) > 0 {
			return fmt.Errorf("out of date (run go run ./tools/yoctogen): %s", strings.Join(stale, ", "))
		}
		return nil
	}
	for _, rel := range stale {
		if err := os.WriteFile(filepath.Join(root, rel), files[rel], 0o644); err != nil {
			return err
		}
		fmt.Println("yoctogen: wrote", rel)
	}
	return nil
}
