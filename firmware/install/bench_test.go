package install_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
)

// BenchmarkStreamInstall installs an uncompressed bundle of a
// KANTO_BENCH_MIB (default 512) MiB image into a file-backed slot, and in
// the same run measures the floor: SHA-256 of the same bytes plus a
// sequential write of them and an fsync. It reports both throughputs and
// install/floor as "ratio" (1.0 = as fast as hashing and writing).
func BenchmarkStreamInstall(b *testing.B) {
	mib := 512
	if v, err := strconv.Atoi(os.Getenv("KANTO_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	size := int64(mib) << 20
	dir := b.TempDir()
	img := filepath.Join(dir, "rootfs.img")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	chunk := bundletest.Image(4<<20, 1)
	for w := int64(0); w < size; w += int64(len(chunk)) {
		chunk[0]++ // no two chunks alike
		f.Write(chunk)
	}
	f.Close()
	pki := bundletest.NewPKI(b, "ecdsa")
	bpath := filepath.Join(dir, "b.kfw")
	out, _ := os.Create(bpath)
	bw := bufio.NewWriterSize(out, 1<<20)
	if _, err := bundle.Create(context.Background(), bw, pki.Signer(), bundle.CreateOptions{Compatible: []string{"bench"}, Version: "1"}, []bundle.Source{{Class: "rootfs", Path: img}}); err != nil {
		b.Fatal(err)
	}
	bw.Flush()
	out.Close()
	for _, n := range []string{"slotA", "slotB", "floor"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "cmdline"), []byte("kanto.slot=A"), 0o644)
	cfg := &slot.Config{Compatible: "bench", Bootloader: "grub", GrubEnv: filepath.Join(dir, "grubenv"), StateDir: filepath.Join(dir, "state"), Cmdline: filepath.Join(dir, "cmdline"),
		Slots: []slot.Slot{{Name: "A", Class: "rootfs", Device: filepath.Join(dir, "slotA")}, {Name: "B", Class: "rootfs", Device: filepath.Join(dir, "slotB")}}}
	env := bootenv.NewGrubEnv(cfg.GrubEnv)
	env.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0"})
	inst := &install.Installer{Slots: cfg, Scheme: bootenv.NewGrubScheme(env), Keyring: pki.Keyring}

	floor := func() time.Duration {
		start := time.Now()
		in, err := os.Open(img)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		dst, err := os.OpenFile(filepath.Join(dir, "floor"), os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, 1<<20)
		for {
			n, err := io.ReadFull(in, buf)
			if n > 0 {
				h.Write(buf[:n])
				if _, err := dst.Write(buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
			if err != nil {
				break
			}
		}
		h.Sum(nil)
		dst.Sync()
		dst.Close()
		return time.Since(start)
	}
	installOnce := func() time.Duration {
		start := time.Now()
		src, err := install.Open(context.Background(), bpath, install.HTTPOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := inst.Install(context.Background(), src, install.Options{}); err != nil {
			b.Fatal(err)
		}
		src.Close()
		return time.Since(start)
	}
	// Untimed warm-up of both: the page cache holds the image and the
	// bundle, and both target files are allocated, as a slot partition is.
	floor()
	installOnce()
	b.SetBytes(size)
	b.ResetTimer()
	var tFloor, tInstall time.Duration
	for range b.N {
		tFloor += floor()
		tInstall += installOnce()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(size)/(1<<20)/(tFloor.Seconds()/n), "floor-MiB/s")
	b.ReportMetric(float64(size)/(1<<20)/(tInstall.Seconds()/n), "install-MiB/s")
	b.ReportMetric(tInstall.Seconds()/tFloor.Seconds(), "ratio")
}
