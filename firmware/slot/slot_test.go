package slot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testConfig(t *testing.T) *Config {
	dir := t.TempDir()
	for _, n := range []string{"sda2", "sda3"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sda3", filepath.Join(dir, "by-partlabel-rootB")); err != nil {
		t.Fatal(err)
	}
	return &Config{Compatible: "b", Bootloader: "grub", GrubEnv: "g", StateDir: dir, Slots: []Slot{
		{Name: "A", Class: "rootfs", Device: filepath.Join(dir, "sda2"), PartUUID: "1234abcd-02", PartLabel: "rootA", Label: "ra", UUID: "aaaa-1"},
		{Name: "B", Class: "rootfs", Device: filepath.Join(dir, "sda3"), PartUUID: "1234ABCD-03", PartLabel: "rootB", Label: "rb"},
	}}
}

func TestBootedFromCmdline(t *testing.T) {
	c := testConfig(t)
	for _, tc := range []struct {
		cmdline string
		want    string
		err     error
	}{
		{"quiet kanto.slot=B root=PARTLABEL=rootA", "B", nil},
		{"kanto.slot=C", "", ErrUnknownBoot},
		{"root=PARTUUID=1234ABCD-02 rw", "A", nil},
		{"root=PARTUUID=1234abcd-03", "B", nil},
		{"root=PARTLABEL=rootB", "B", nil},
		{"root=LABEL=ra", "A", nil},
		{"root=UUID=AAAA-1", "A", nil},
		{"root=" + c.Slots[1].Device, "B", nil},
		{"root=" + filepath.Join(c.StateDir, "by-partlabel-rootB"), "B", nil},
		{"root=/dev/nfs", "", ErrUnknownBoot},
		{"console=ttyS0", "", ErrUnknownBoot},
	} {
		got, err := c.BootedFromCmdline(tc.cmdline)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%q: got %q, %v; want %q, %v", tc.cmdline, got, err, tc.want, tc.err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"no compatible", func(c *Config) { c.Compatible = "" }},
		{"bad bootloader", func(c *Config) { c.Bootloader = "lilo" }},
		{"uboot without config", func(c *Config) { c.Bootloader = "uboot" }},
		{"slot C", func(c *Config) { c.Slots[1].Name = "C" }},
		{"missing B", func(c *Config) { c.Slots = c.Slots[:1] }},
		{"unpaired class", func(c *Config) { c.Slots = append(c.Slots, Slot{Name: "A", Class: "boot", Device: "x"}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			if err := c.Validate(); err != nil {
				t.Fatalf("base: %v", err)
			}
			tc.mod(c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestStatusRecord(t *testing.T) {
	c := testConfig(t)
	if err := c.UpdateStatus("B", func(s *Status) { s.Status, s.Version = StatusTrial, "2" }); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateStatus("B", func(s *Status) { s.BootCount++ }); err != nil {
		t.Fatal(err)
	}
	sf, err := c.LoadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if s := sf.Slots["B"]; s.Status != StatusTrial || s.Version != "2" || s.BootCount != 1 {
		t.Fatalf("%+v", s)
	}
}

func FuzzParseSlots(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "slots-*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "root=PARTUUID=6c586e13-03 kanto.slot=B")
	}
	f.Fuzz(func(t *testing.T, data []byte, cmdline string) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error outside ErrConfig: %v", err)
			}
			return
		}
		if b, err := c.BootedFromCmdline(cmdline); err == nil && b != "A" && b != "B" {
			t.Fatalf("booted %q", b)
		}
	})
}

func TestParseSeeds(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "slots-*.json"))
	if len(files) < 2 {
		t.Fatal("seed corpus missing")
	}
	for _, name := range files {
		data, _ := os.ReadFile(name)
		if _, err := Parse(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
