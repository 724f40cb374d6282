package tpmkey

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The seeds are public blobs tpm2_create wrote (swtpm, tpm2-tools 5.4):
// rsa2048.pub and ecc256.pub.
func seeds(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.pub")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds in testdata: %v", err)
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(f)] = b
	}
	return m
}

func TestParsePublicGolden(t *testing.T) {
	s := seeds(t)
	for name, check := range map[string]func(any) bool{
		"rsa2048.pub": func(k any) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 2048 && r.E == 65537 },
		"ecc256.pub":  func(k any) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve.Params().Name == "P-256" },
	} {
		body, err := split2B(s[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, info, err := parsePublic(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !check(info.pub) {
			t.Errorf("%s: public key %T %v", name, info.pub, info.pub)
		}
	}
}

func FuzzParsePublic(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := split2B(data)
		if err != nil {
			return
		}
		_, info, err := parsePublic(body)
		if err != nil {
			if !errors.Is(err, ErrBlob) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("uncategorised error %v", err)
			}
			return
		}
		if info.pub == nil {
			t.Fatal("no public key and no error")
		}
	})
}
