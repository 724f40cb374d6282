package install_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/slot"
)

// TestInstallMemoryBounded: the installer streams, so its memory does not
// grow with the image. A child test process (TestHelperInstall) installs a
// 32 MiB and a 256 MiB image read from a pipe, uncompressed and with
// zstd; the bundles are generated while the child reads them (the image
// is a sparse file, an uncompressed bundle is never stored). The peak RSS of the child (wait4's ru_maxrss, its
// VmHWM) must stay under an absolute bound and the larger install's peak
// must not exceed the smaller one's by more than a few MiB.
func TestInstallMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("installs 288 MiB")
	}
	const mib = 1 << 20
	pki := bundletest.NewPKI(t, "ed25519")
	for _, compression := range []string{bundle.CompressionNone, bundle.CompressionZstd} {
		t.Run(compression, func(t *testing.T) {
			if raceEnabled && compression != bundle.CompressionNone {
				t.Skip("uncompressed only under -race (see race_test.go)")
			}
			small := installPeakRSS(t, pki, compression, 32*mib)
			large := installPeakRSS(t, pki, compression, 256*mib)
			t.Logf("peak RSS of the installer: %.1f MiB for 32 MiB, %.1f MiB for 256 MiB", float64(small)/mib, float64(large)/mib)
			if large > maxInstallRSS {
				t.Errorf("installing 256 MiB peaked at %.1f MiB RSS, bound %d MiB", float64(large)/mib, maxInstallRSS/mib)
			}
			if large-small > maxInstallRSSGrowth {
				t.Errorf("peak RSS grew by %.1f MiB from a 32 MiB to a 256 MiB image, bound %d MiB", float64(large-small)/mib, maxInstallRSSGrowth/mib)
			}
		})
	}
}

// installPeakRSS installs a bundle of one size-byte image into a
// file-backed device in a child process and returns the child's peak RSS
// in bytes. A compressed payload is compressed into a temp file first
// (bundle.Create hashes it before writing the header); of zeros it is
// small.
func installPeakRSS(t *testing.T, pki *bundletest.PKI, compression string, size int64) int64 {
	t.Helper()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	img := p("rootfs.img")
	must(t, os.WriteFile(img, nil, 0o644))
	must(t, os.Truncate(img, size)) // sparse: no disk, reads as zeros
	for _, n := range []string{"slotA", "slotB"} {
		must(t, os.WriteFile(p(n), nil, 0o644))
	}
	must(t, os.WriteFile(p("cmdline"), []byte("console=ttyS0 kanto.slot=A\n"), 0o644))
	cfg := slot.Config{Compatible: "test-board", Bootloader: "grub", GrubEnv: "grubenv", StateDir: "state", Cmdline: "cmdline",
		Slots: []slot.Slot{{Name: "A", Class: "rootfs", Device: "slotA"}, {Name: "B", Class: "rootfs", Device: "slotB"}}}
	data, err := json.Marshal(cfg)
	must(t, err)
	must(t, os.WriteFile(p("slots.json"), data, 0o644))
	env := bootenv.NewGrubEnv(p("grubenv"))
	must(t, env.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}))

	pr, pw, err := os.Pipe()
	must(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInstall$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KANTO_INSTALL_HELPER=1", "KANTO_SLOTS="+p("slots.json"),
		"KANTO_KEYRING="+pki.WriteKeyring(t, dir), "KANTO_BUNDLE=/dev/stdin")
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, &stdout, &stderr
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pr.Close()
	// The producer of the bundle: it ends when the bundle is written or
	// the child stops reading (EPIPE), and the test waits for it below.
	created := make(chan error, 1)
	go func() {
		_, err := bundle.Create(context.Background(), pw, pki.Signer(),
			bundle.CreateOptions{Compatible: []string{"test-board"}, Version: "2.0", Compression: compression, TempDir: dir},
			[]bundle.Source{{Class: "rootfs", Path: img}})
		pw.Close()
		created <- err
	}()
	werr := cmd.Wait()
	if cerr := <-created; cerr != nil && werr == nil {
		t.Fatalf("bundle: %v", cerr)
	}
	if werr != nil || !strings.Contains(stdout.String(), "installed 2.0 into B") {
		t.Fatalf("install of %d MiB: %v\n%s%s", size>>20, werr, stdout.String(), stderr.String())
	}
	if fi, err := os.Stat(p("slotB")); err != nil || fi.Size() != size {
		t.Fatalf("slot B after the install: %v, %v; want %d bytes", fi, err, size)
	}
	if e, err := env.Read(); err != nil || e["ORDER"] != "B A" || e["B_TRY"] != "1" {
		t.Fatalf("grubenv after the install: %v, %v; want B armed", e, err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for the child: %T", cmd.ProcessState.SysUsage())
	}
	return ru.Maxrss << 10 // KiB on Linux
}
