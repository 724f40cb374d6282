package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/images/gpt"
	"github.com/kantofw/kanto/internal/testenv"
)

const MiB = 1 << 20

// testImage builds a small disk: an ESP with a grubenv and an empty data
// partition.
func testImage(t *testing.T) *Image {
	t.Helper()
	testenv.LookPath(t, "mkfs.vfat")
	testenv.LookPath(t, "mcopy")
	testenv.LookPath(t, "mke2fs")
	testenv.LookPath(t, "debugfs")
	dir := t.TempDir()
	esp := filepath.Join(dir, "esp.vfat")
	env, err := bootenv.EncodeGrubEnv(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "grubenv")
	if err := os.WriteFile(envFile, env, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"mkfs.vfat", "-C", esp, "8192"},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", esp, envFile, "::/EFI/BOOT/"},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	p := filepath.Join(dir, "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb := &gpt.Table{DiskSize: 20 * MiB, DiskGUID: gpt.NewGUID("t"), Partitions: []gpt.Partition{
		{Name: "esp", Type: gpt.TypeEFISystem, Start: MiB, Size: 8 * MiB},
		{Name: "data", Type: gpt.TypeLinuxFS, Start: 9 * MiB, Size: 10 * MiB},
	}}
	if err := f.Truncate(tb.DiskSize); err != nil {
		t.Fatal(err)
	}
	if err := tb.Write(f); err != nil {
		t.Fatal(err)
	}
	im, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.WritePartition("esp", esp); err != nil {
		t.Fatal(err)
	}
	return im
}

func TestEnvAndScheme(t *testing.T) {
	im := testImage(t)
	env, err := im.Env()
	if err != nil {
		t.Fatal(err)
	}
	if env["ORDER"] != "A B" || env["A_OK"] != "1" {
		t.Fatalf("env = %v", env)
	}
	if err := im.Scheme(func(s bootenv.Scheme) error { return s.Arm("B") }); err != nil {
		t.Fatal(err)
	}
	env, err = im.Env()
	if err != nil {
		t.Fatal(err)
	}
	if env["ORDER"] != "B A" || env["B_OK"] != "1" || env["B_TRY"] != "1" {
		t.Errorf("after Arm(B): env = %v", env)
	}
}

func TestWriteData(t *testing.T) {
	im := testImage(t)
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "kanto"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "kanto", "id"), []byte("device-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := im.WriteData(src); err != nil {
		t.Fatal(err)
	}
	p, _ := im.Part("data")
	// debugfs reads the filesystem straight from the partition's bytes.
	part := filepath.Join(t.TempDir(), "data.ext4")
	b, err := os.ReadFile(im.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, b[p.Start:p.Start+p.Size], 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /kanto/id", part).Output()
	if err != nil || strings.TrimSpace(string(out)) != "device-1" {
		t.Errorf("debugfs cat = %q, %v", out, err)
	}
}

func TestPartNotFound(t *testing.T) {
	im := testImage(t)
	if _, err := im.Part("rootfsA"); err == nil {
		t.Error("Part(rootfsA) found a partition that does not exist")
	}
}
