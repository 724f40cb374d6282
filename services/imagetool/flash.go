package imagetool

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/images/bmap"
	"github.com/kantofw/kanto/images/flash"
	"github.com/kantofw/kanto/services/internal/cli"
)

// FlashMain is `kanto flash [flags] IMAGE TARGET`.
func FlashMain(_ context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "flash")
	bmapPath := fs.String("bmap", "", "block map (default IMAGE with .bmap instead of .img)")
	force := fs.Bool("force", false, "write even to a mounted or system disk")
	noVerify := fs.Bool("no-verify", false, "skip reading back what was written")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return cli.Usagef("usage: kanto flash [flags] IMAGE TARGET")
	}
	img, target := fs.Arg(0), fs.Arg(1)
	if *bmapPath == "" {
		*bmapPath = strings.TrimSuffix(img, ".img") + ".bmap"
	}
	raw, err := os.ReadFile(*bmapPath)
	if err != nil {
		return err
	}
	m, err := bmap.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *bmapPath, err)
	}
	start := time.Now()
	last := time.Time{}
	res, err := flash.Flash(img, m, target, flash.Options{Force: *force, NoVerify: *noVerify, Progress: func(done, total int64) {
		if time.Since(last) > 500*time.Millisecond || done == total {
			last = time.Now()
			fmt.Fprintf(env.Stderr, "\rflash: %3d%% %d/%d MiB", done*100/max(total, 1), done>>20, total>>20)
		}
	}})
	fmt.Fprintln(env.Stderr)
	if err != nil {
		return err
	}
	verified := "not verified"
	if res.Verified {
		verified = "verified"
	}
	fmt.Fprintf(env.Stdout, "wrote %d MiB of %d MiB to %s in %.1fs, %s\n", res.Written>>20, m.ImageSize>>20, target, time.Since(start).Seconds(), verified)
	return nil
}
