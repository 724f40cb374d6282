package initcfg

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoadGolden(t *testing.T) {
	c, err := Load("testdata/init.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Services), 2; got != want {
		t.Fatalf("services = %d, want %d", got, want)
	}
	svcs := c.SupervisedServices()
	if got := svcs[1]; got.Path != "/usr/bin/kanto" || got.Args[0] != "suite-connector" || got.Watchdog.Seconds() != 30 {
		t.Errorf("service 1 = %+v", got)
	}
	if c.Network.Interface != "eth0" || c.Health.GrubEnv == "" || c.Network.TimeoutSec != 5 {
		t.Errorf("defaults not applied: %+v %+v", c.Network, c.Health)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"unknown field":   `{"services": [], "bogus": 1}`,
		"relative exec":   `{"services": [{"name": "a", "exec": ["kanto"]}]}`,
		"cycle":           `{"services": [{"name": "a", "exec": ["/a"], "after": ["b"]}, {"name": "b", "exec": ["/b"], "after": ["a"]}]}`,
		"bad commit":      `{"services": [], "health": {"commit": "maybe"}}`,
		"mount no fstype": `{"services": [], "mounts": [{"device": "/dev/vda4", "path": "/data"}]}`,
		"trailing":        `{"services": []} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode() error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		slot string
		root string
		fs   string
		more map[string]string
	}{
		{"BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=rootfsA rootwait ro panic=5 kanto.slot=A console=ttyS0\n", "A", "PARTLABEL=rootfsA", "ext4", map[string]string{"rootwait": "", "panic": "5"}},
		{`root=/dev/vda3 rootfstype=squashfs kanto.slot=B kanto.note="a b"`, "B", "/dev/vda3", "squashfs", map[string]string{"kanto.note": "a b"}},
		{"", "", "", "ext4", nil},
	} {
		c := ParseCmdline(tc.in)
		if c.Slot != tc.slot || c.Root != tc.root || c.RootFSType != tc.fs {
			t.Errorf("ParseCmdline(%q) = %+v", tc.in, c)
		}
		for k, want := range tc.more {
			if got, ok := c.Params[k]; !ok || got != want {
				t.Errorf("ParseCmdline(%q).Params[%q] = %q, %v; want %q", tc.in, k, got, ok, want)
			}
		}
	}
}

func TestCmdlineParamsComplete(t *testing.T) {
	got := ParseCmdline("a=1 b c=x=y").Params
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "", "c": "x=y"}, got); diff != "" {
		t.Errorf("Params (-want +got):\n%s", diff)
	}
}

func FuzzDecode(f *testing.F) {
	seed, err := os.ReadFile("testdata/init.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add(`{"services": []}`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Decode(strings.NewReader(in))
		if err != nil {
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("decoded config fails Check: %v", err)
		}
		_ = c.SupervisedServices()
	})
}

func FuzzParseCmdline(f *testing.F) {
	f.Add("root=PARTLABEL=rootfsA ro kanto.slot=A")
	f.Add(`a="b c" "d`)
	f.Fuzz(func(t *testing.T, in string) {
		c := ParseCmdline(in)
		if c.Params == nil || c.RootFSType == "" {
			t.Fatal("zero values")
		}
	})
}
