package uplink

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadProvisioning(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full.json", `{"hub":{"credentials":{"deviceId":"ns:d","tenantId":"T","authId":"a",
		"adapters":[{"type":"http","uri":"https://x"},{"type":"mqtt","uri":"mqtts://hub","port":"8883"}],
		"secrets":[{"passwordBase64":"c2VjcmV0"},{"password":"second"}]},"device":{"authorities":["auto-provisioning-enabled"]}},
		"things":{"thing":{"policyId":"ns:p"}}}`)
	p, found, err := ReadProvisioning(full)
	if err != nil || !found {
		t.Fatalf("found=%v err=%v", found, err)
	}
	if *p.DeviceID != "ns:d" || *p.TenantID != "T" || *p.AuthID != "a" || *p.PolicyID != "ns:p" ||
		*p.Address != "mqtts://hub:8883" || *p.Password != "secret" || !p.AutoProvisioning() {
		t.Errorf("parsed %+v", p)
	}

	partial, _, err := ReadProvisioning(write("partial.json", `{"hub":{"credentials":{"adapters":[{"type":"mqtt","uri":"tcp://h","port":1883}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if partial.DeviceID != nil || partial.Password != nil || *partial.Address != "tcp://h:1883" || partial.AutoProvisioning() {
		t.Errorf("partial %+v: absent keys must stay nil", partial)
	}
	keep := "old"
	Merge(&keep, partial.DeviceID)
	if keep != "old" {
		t.Errorf("Merge of an absent key changed the value to %q", keep)
	}

	if _, found, err := ReadProvisioning(filepath.Join(dir, "missing.json")); found || err != nil {
		t.Errorf("missing file: found=%v err=%v", found, err)
	}
	for _, bad := range []string{`{"hub":`, `{"hub":{"credentials":{"secrets":[{"passwordBase64":"%%%"}]}}}`} {
		if _, _, err := ReadProvisioning(write("bad.json", bad)); !errors.Is(err, ErrProvisioning) {
			t.Errorf("%s: err = %v, want ErrProvisioning", bad, err)
		}
	}
}
