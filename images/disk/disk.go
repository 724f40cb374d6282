// Package disk edits a built Kanto disk image from the host, without root
// or loop devices: it finds partitions by GPT label, writes a root
// filesystem into a slot, reads and writes the grubenv on the EFI system
// partition (through mtools) and replaces the data partition (mke2fs -d).
// Tests use it to stage A/B scenarios; `kanto image provision` uses it to
// put a device identity on the data partition.
package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/images/bmap"
	ugpt "github.com/u-root/u-root/pkg/mount/gpt"
)

// Errors, checked with errors.Is.
var (
	// ErrNoPartition: the image has no partition with that label.
	ErrNoPartition = errors.New("no such partition")
	// ErrTooBig: the content does not fit the partition.
	ErrTooBig = errors.New("does not fit the partition")
)

// GrubenvPath is the environment's path on the ESP.
const GrubenvPath = "::/EFI/BOOT/grubenv"

// Partition is a partition of the image, in bytes.
type Partition struct {
	Label       string
	Index       int // 1-based
	Start, Size int64
}

// Image is a disk image file.
type Image struct {
	Path  string
	Parts []Partition
}

// Open reads the image's partition table.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pt, err := ugpt.New(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	im := &Image{Path: path}
	for i, p := range pt.Primary.Parts {
		if p.FirstLBA == 0 {
			continue
		}
		im.Parts = append(im.Parts, Partition{
			Label: partName(p.Name), Index: i + 1,
			Start: int64(p.FirstLBA) * 512, Size: int64(p.LastLBA-p.FirstLBA+1) * 512,
		})
	}
	return im, nil
}

func partName(n ugpt.PartName) string {
	var u []uint16
	for i := 0; i+1 < len(n); i += 2 {
		c := uint16(n[i]) | uint16(n[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// Part returns the partition labelled label.
func (im *Image) Part(label string) (Partition, error) {
	for _, p := range im.Parts {
		if p.Label == label {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%s: %w", label, ErrNoPartition)
}

// WritePartition copies the data extents of src into the partition and
// discards (punches out) the rest of it, so nothing of the old content
// survives in the filesystem's "don't care" blocks.
func (im *Image) WritePartition(label, src string) error {
	p, err := im.Part(label)
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.Size {
		return fmt.Errorf("%s (%d bytes) into %s (%d bytes): %w", src, st.Size(), label, p.Size, ErrTooBig)
	}
	out, err := os.OpenFile(im.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := punch(out, p.Start, p.Size); err != nil {
		return err
	}
	exts, err := bmap.Extents(in, st.Size())
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, e := range exts {
		w := io.NewOffsetWriter(out, p.Start+e[0])
		if _, err := io.CopyBuffer(w, io.NewSectionReader(in, e[0], e[1]-e[0]), buf); err != nil {
			return err
		}
	}
	return out.Sync()
}

func mtools(args ...string) ([]byte, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (im *Image) espSpec() (string, error) {
	p, err := im.Part("esp")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s@@%d", im.Path, p.Start), nil
}

// Env reads the grubenv from the ESP.
func (im *Image) Env() (map[string]string, error) {
	spec, err := im.espSpec()
	if err != nil {
		return nil, err
	}
	raw, err := mtools("mtype", "-i", spec, GrubenvPath)
	if err != nil {
		return nil, err
	}
	return bootenv.ParseGrubEnv(raw)
}

// Scheme runs fn with the A/B scheme over a copy of the grubenv, then puts
// the copy back. This is how a test arms or marks slots from the host.
func (im *Image) Scheme(fn func(bootenv.Scheme) error) error {
	spec, err := im.espSpec()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kanto-grubenv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "grubenv")
	if _, err := mtools("mcopy", "-n", "-i", spec, GrubenvPath, tmp); err != nil {
		return err
	}
	if err := fn(bootenv.NewGrubScheme(bootenv.NewGrubEnv(tmp))); err != nil {
		return err
	}
	_, err = mtools("mcopy", "-o", "-i", spec, tmp, GrubenvPath)
	return err
}

// WriteData replaces the data partition with a fresh ext4 filesystem
// holding the files of dir (mke2fs -d; an empty dir gives an empty one).
func (im *Image) WriteData(dir string) error {
	p, err := im.Part("data")
	if err != nil {
		return err
	}
	tmpDir, err := os.MkdirTemp("", "kanto-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	fsImg := filepath.Join(tmpDir, "data.ext4")
	cmd := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", "-m", "0", "-E", "root_owner=0:0",
		"-d", dir, fsImg, fmt.Sprintf("%dk", p.Size/1024))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs: %w: %s", err, out)
	}
	return im.WritePartition("data", fsImg)
}
