package bootenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
)

func TestStoreConformance(t *testing.T) {
	t.Run("grubenv", func(t *testing.T) {
		bootenvtest.StoreSuite(t, func(t *testing.T) (bootenv.Store, func() bootenv.Store) {
			path := filepath.Join(t.TempDir(), "grubenv")
			return bootenv.NewGrubEnv(path), func() bootenv.Store { return bootenv.NewGrubEnv(path) }
		})
	})
	for _, copies := range []int{1, 2} {
		t.Run(fmt.Sprintf("uboot-%d-copies", copies), func(t *testing.T) {
			bootenvtest.StoreSuite(t, func(t *testing.T) (bootenv.Store, func() bootenv.Store) {
				dir := t.TempDir()
				cfg := ""
				for i := range copies {
					dev := filepath.Join(dir, fmt.Sprintf("env%d", i))
					if err := os.WriteFile(dev, make([]byte, 0x8000), 0o644); err != nil {
						t.Fatal(err)
					}
					cfg += fmt.Sprintf("%s 0x1000 0x2000\n", dev)
				}
				path := filepath.Join(dir, "fw_env.config")
				os.WriteFile(path, []byte(cfg), 0o644)
				open := func() bootenv.Store {
					u, err := bootenv.OpenUBootEnv(path)
					if err != nil {
						t.Fatal(err)
					}
					u.LockPath, u.Create = filepath.Join(dir, "lock"), true
					return u
				}
				s := open()
				if err := s.Write(map[string]string{"bootcmd": "run kanto"}); err != nil {
					t.Fatal(err)
				}
				return s, open
			})
		})
	}
}
