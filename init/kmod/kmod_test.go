package kmod

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testDeps(t *testing.T) (*Deps, map[string]bool) {
	t.Helper()
	f, err := os.Open("testdata/modules.dep")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := ParseDeps(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Open("testdata/modules.builtin")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	builtin, err := ParseBuiltin(b)
	if err != nil {
		t.Fatal(err)
	}
	return d, builtin
}

func TestResolve(t *testing.T) {
	d, builtin := testDeps(t)
	for _, tc := range []struct {
		name  string
		mods  []string
		want  []string
		error error
	}{
		{"ext4 after its deps", []string{"ext4"}, []string{
			"kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko",
		}, nil},
		{"shared deps loaded once", []string{"virtio_blk", "virtio-net"}, []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko",
			"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
		}, nil},
		{"builtin skipped", []string{"serial", "i6300esb"}, []string{"kernel/drivers/watchdog/i6300esb.ko"}, nil},
		{"missing", []string{"nosuch"}, nil, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Resolve(tc.mods, builtin)
			if !errors.Is(err, tc.error) {
				t.Fatalf("Resolve() error = %v, want %v", err, tc.error)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolve() (-want +got):\n%s", diff)
			}
		})
	}
}

// Every module of a resolved list comes after all of its dependencies.
func TestResolveDepsFirst(t *testing.T) {
	d, builtin := testDeps(t)
	got, err := d.Resolve([]string{"virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic", "vfat", "i6300esb"}, builtin)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, p := range got {
		if _, dup := pos[p]; dup {
			t.Errorf("%s listed twice", p)
		}
		pos[p] = i
	}
	for _, p := range got {
		for _, dep := range d.deps[p] {
			if builtin[Name(dep)] {
				continue
			}
			if pos[dep] >= pos[p] {
				t.Errorf("%s loads before its dependency %s", p, dep)
			}
		}
	}
}

func TestResolveCycle(t *testing.T) {
	d, err := ParseDeps(strings.NewReader("a.ko: b.ko\nb.ko: a.ko\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Resolve([]string{"a"}, nil); !errors.Is(err, ErrCycle) {
		t.Errorf("Resolve() error = %v, want ErrCycle", err)
	}
}

func TestParseDepsErrors(t *testing.T) {
	for _, in := range []string{"no colon here\n", ": x.ko\n", "a.ko:\na.ko:\n", "a b.ko: c.ko\n"} {
		if _, err := ParseDeps(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseDeps(%q) error = %v, want ErrSyntax", in, err)
		}
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko":     "ext4",
		"crc32c-generic":             "crc32c_generic",
		"kernel/a/b/nls_cp437.ko.xz": "nls_cp437",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseDeps(f *testing.F) {
	seed, err := os.ReadFile("testdata/modules.dep")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	f.Add("a.ko: b.ko\nb.ko: a.ko\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDeps(strings.NewReader(in))
		if err != nil {
			return
		}
		var names []string
		for p := range d.deps {
			names = append(names, p)
		}
		got, err := d.Resolve(names, nil)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, p := range got {
			if seen[p] {
				t.Fatalf("%s twice", p)
			}
			seen[p] = true
		}
	})
}
