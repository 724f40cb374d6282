package bootenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteSeeds regenerates the U-Boot seed corpus with -update-seeds.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("KANTO_UPDATE_SEEDS") == "" {
		t.Skip("set KANTO_UPDATE_SEEDS=1 to regenerate testdata/uboot-*.bin")
	}
	env := map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2", "BOOT_TRIAL": "1", "bootcmd": "run kanto"}
	single, _ := EncodeUBootEnv(env, 512, false, 0)
	red, _ := EncodeUBootEnv(env, 512, true, 7)
	os.WriteFile(filepath.Join("testdata", "uboot-single.bin"), single, 0o644)
	os.WriteFile(filepath.Join("testdata", "uboot-redundant.bin"), red, 0o644)
}
