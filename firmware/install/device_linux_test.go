package install

import (
	"strings"
	"testing"
)

func TestMountPointOf(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
36 22 179:3 / /mnt/slotB rw,noatime - ext4 /dev/mmcblk0p3 rw
40 22 259:1 / /data rw - ext4 /dev/nvme0n1p1 rw
`
	for _, tc := range []struct {
		major, minor uint32
		want         string
	}{{179, 3, "/mnt/slotB"}, {259, 1, "/data"}, {179, 2, ""}, {254, 0, "/"}} {
		if got := mountPointOf(strings.NewReader(info), tc.major, tc.minor); got != tc.want {
			t.Errorf("%d:%d: got %q, want %q", tc.major, tc.minor, got, tc.want)
		}
	}
}
