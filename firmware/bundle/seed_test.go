package bundle_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
)

// TestWriteSeeds regenerates the fuzz seeds in testdata/ when
// KANTO_UPDATE_SEEDS=1.
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("KANTO_UPDATE_SEEDS") == "" {
		t.Skip("set KANTO_UPDATE_SEEDS=1 to regenerate testdata seeds")
	}
	pki := bundletest.NewPKI(t, "ed25519")
	for _, comp := range []string{"none", "zstd"} {
		b := bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": bundletest.Image(9000, 1), "boot": []byte("kernel")}, bundletest.Options{Compression: comp, ChunkSize: 4096, Compatible: []string{"qemu-x86_64", "generic"}})
		h, err := bundle.ReadHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join("testdata", "manifest-"+comp+".json"), h.RawManifest, 0o644)
		os.WriteFile(filepath.Join("testdata", "bundle-"+comp+".kfw"), b, 0o644)
	}
}
