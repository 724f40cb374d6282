package vmtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/images/disk"
)

// Monitor sends one command to a QEMU human monitor listening on the unix
// socket sock (-monitor unix:SOCK,server,nowait).
func Monitor(sock, cmd string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// The monitor greets with a prompt, echoes the command as it reads it
	// and prompts again once the command has run. Closing earlier can
	// drop the command.
	if err := readUntil(c, "(qemu) ", 1); err != nil {
		return fmt.Errorf("monitor greeting: %w", err)
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return err
	}
	if err := readUntil(c, "(qemu) ", 1); err != nil {
		return fmt.Errorf("monitor %q: %w", cmd, err)
	}
	return nil
}

// readUntil reads from r until marker has been seen n times.
func readUntil(r io.Reader, marker string, n int) error {
	var seen []byte
	buf := make([]byte, 4096)
	for strings.Count(string(seen), marker) < n {
		k, err := r.Read(buf)
		seen = append(seen, buf[:k]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// ext4 superblock fields (the kernel's struct ext4_super_block).
const (
	ext4SuperOffset   = 1024
	ext4MagicOffset   = 0x38
	ext4IncompatOff   = 0x60
	ext4Magic         = 0xEF53
	ext4IncompRecover = 0x4 // needs_recovery: mounted with a journal, not unmounted since
)

// errNotExt4 marks a partition without an ext4 superblock.
var errNotExt4 = errors.New("no ext4 superblock")

// NeedsRecovery reports whether the ext4 filesystem in the partition
// labelled label of the disk image is marked as mounted (its journal flag
// needs_recovery is set while mounted and cleared by a clean unmount).
func NeedsRecovery(image, label string) (bool, error) {
	im, err := disk.Open(image)
	if err != nil {
		return false, err
	}
	p, err := im.Part(label)
	if err != nil {
		return false, err
	}
	f, err := os.Open(image)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, p.Start+ext4SuperOffset); err != nil {
		return false, err
	}
	if binary.LittleEndian.Uint16(sb[ext4MagicOffset:]) != ext4Magic {
		return false, fmt.Errorf("partition %s: %w", label, errNotExt4)
	}
	return binary.LittleEndian.Uint32(sb[ext4IncompatOff:])&ext4IncompRecover != 0, nil
}
