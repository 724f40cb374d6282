package flash

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Lines as Linux writes them (proc(5)), from a machine whose disks are
// sda (8:0, partitions 8:1...) and sdb (8:16, partitions 8:17...).
const (
	lineRoot      = `27 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro`
	lineProc      = `22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw`
	lineTmpfs     = `25 24 0:23 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64`
	lineWholeDisk = `98 27 8:16 / /mnt/raw rw,relatime shared:60 - ext4 /dev/sdb rw`
	linePartition = `99 27 8:17 / /media/usb rw,nosuid,nodev,relatime shared:61 - vfat /dev/sdb1 rw,fmask=0022`
	lineBind      = `100 27 8:17 /photos/2024 /srv/photos rw,relatime shared:61 - vfat /dev/sdb1 rw,fmask=0022`
	lineSpaces    = `101 27 8:17 / /media/me/USB\040STICK\011x\134y rw,relatime shared:62 - vfat /dev/sdb1 rw`
	lineNoOpt     = `102 27 8:33 / /mnt/other rw,relatime - xfs /dev/sdc1 rw`
	lineManyOpt   = `103 27 0:40 / /var/lib/docker/overlay2/x/merged rw,relatime shared:70 master:1 propagate_from:1 unbindable - overlay overlay rw,lowerdir=/a:/b`
)

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       mount
	}{
		{"root", lineRoot, mount{Major: 8, Minor: 2, Root: "/", Point: "/", FSType: "ext4", Source: "/dev/sda2"}},
		{"pseudo", lineProc, mount{Major: 0, Minor: 21, Root: "/", Point: "/proc", FSType: "proc", Source: "proc"}},
		{"bind", lineBind, mount{Major: 8, Minor: 17, Root: "/photos/2024", Point: "/srv/photos", FSType: "vfat", Source: "/dev/sdb1"}},
		{"escaped", lineSpaces, mount{Major: 8, Minor: 17, Root: "/", Point: "/media/me/USB STICK\tx\\y", FSType: "vfat", Source: "/dev/sdb1"}},
		{"no optional fields", lineNoOpt, mount{Major: 8, Minor: 33, Root: "/", Point: "/mnt/other", FSType: "xfs", Source: "/dev/sdc1"}},
		{"many optional fields", lineManyOpt, mount{Major: 0, Minor: 40, Root: "/", Point: "/var/lib/docker/overlay2/x/merged", FSType: "overlay", Source: "overlay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.line + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]mount{tc.want}, got); diff != "" {
				t.Errorf("parseMountinfo() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMountinfoMalformed(t *testing.T) {
	// The check fails closed: a line it cannot read may be the target's.
	for _, line := range []string{
		`27 1 8:2 / /`, // cut short
		`27 1 8:2 / / rw shared:1 ext4 /dev/sda2 rw`, // no separator
		`27 1 8:2 / / rw -`,                          // nothing after the separator
		`27 1 8:2 / / rw - ext4`,                     // no source
		`27 1 82 / / rw - ext4 /dev/sda2 rw`,         // device without colon
		`27 1 8:x / / rw - ext4 /dev/sda2 rw`,        // device not a number
		`27 1 -8:2 / / rw - ext4 /dev/sda2 rw`,       // negative
		`27 1 4294967296:0 / / rw - ext4 /dev/sda2 rw`,
		`27 1 8:2 / / - ext4 /dev/sda2 rw`, // separator where the options go
	} {
		if got, err := parseMountinfo(strings.NewReader(lineProc + "\n" + line + "\n")); !errors.Is(err, errMountinfo) {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want errMountinfo", line, got, err)
		}
	}
}

func TestFindMounted(t *testing.T) {
	// The target is sdb; onDisk stands for the sysfs lookup (see
	// TestCheckDevice for that).
	onSDB := func(m mount) bool { return m.Major == 8 && m.Minor >= 16 && m.Minor < 32 }
	for _, tc := range []struct {
		name      string
		lines     []string
		wantPoint string // "" when the target is not mounted
	}{
		{"nothing of sdb", []string{lineProc, lineRoot, lineTmpfs, lineNoOpt}, ""},
		{"empty", nil, ""},
		{"whole disk", []string{lineProc, lineRoot, lineWholeDisk}, "/mnt/raw"},
		{"partition", []string{lineProc, lineRoot, linePartition}, "/media/usb"},
		{"bind mount only", []string{lineRoot, lineBind}, "/srv/photos"},
		{"escaped mount point", []string{lineRoot, lineTmpfs, lineSpaces}, "/media/me/USB STICK\tx\\y"},
		{"first of several", []string{lineRoot, linePartition, lineBind}, "/media/usb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Join(tc.lines, "\n")
			m, ok, err := findMounted(strings.NewReader(in), onSDB)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Point; ok != (tc.wantPoint != "") || got != tc.wantPoint {
				t.Errorf("findMounted() = %q, %v; want %q", got, ok, tc.wantPoint)
			}
		})
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\040b`:       "a b",
		`\134\011\012`: "\\\t\n",
		`end\04`:       `end\04`, // too short: kept
		`\400`:         `\400`,   // does not fit a byte: kept
		`\08`:          `\08`,
		`\\040`:        `\ `,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// escapeMountinfo writes s so that strings.Fields keeps it one field and
// unescapeMountinfo gives it back.
func escapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzParseMountinfo(f *testing.F) {
	// More seeds in testdata/fuzz/FuzzParseMountinfo.
	for _, l := range []string{lineRoot, lineBind, lineSpaces, lineManyOpt} {
		f.Add([]byte(l + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mounts, err := parseMountinfo(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, errMountinfo) {
				t.Fatalf("error %v is not errMountinfo", err)
			}
			return
		}
		// What was read writes back to lines that read the same.
		var b strings.Builder
		for _, m := range mounts {
			fmt.Fprintf(&b, "1 2 %d:%d %s %s rw - %s %s rw\n", m.Major, m.Minor,
				escapeMountinfo(m.Root), escapeMountinfo(m.Point), escapeMountinfo(m.FSType), escapeMountinfo(m.Source))
		}
		again, err := parseMountinfo(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-reading %q: %v", b.String(), err)
		}
		if diff := cmp.Diff(mounts, again); diff != "" {
			t.Errorf("round trip (-first +again):\n%s", diff)
		}
	})
}
