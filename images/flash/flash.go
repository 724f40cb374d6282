// Package flash writes a disk image to a target (block device or file)
// using its block map: only mapped ranges are written, each range is read
// back and compared with the map's SHA-256. It refuses targets that are
// mounted or hold the running system unless forced.
package flash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kantofw/kanto/images/bmap"
)

// Errors, checked with errors.Is.
var (
	// ErrTargetBusy: the target (or one of its partitions) is mounted or
	// holds the running system; Force overrides.
	ErrTargetBusy = errors.New("target in use")
	// ErrTooSmall: the target block device is smaller than the image.
	ErrTooSmall = errors.New("target too small")
	// ErrVerify: data read back differs from the block map.
	ErrVerify = errors.New("verification failed")
)

// Options tune Flash.
type Options struct {
	Force bool
	// Progress, if set, is called after each range with bytes done/total.
	Progress func(done, total int64)
	// NoVerify skips the read-back (the image's ranges are still checked
	// against the map while writing).
	NoVerify bool
}

// Result summarises a flash.
type Result struct {
	Written  int64 // bytes written
	Verified bool
}

// Flash copies the mapped ranges of image to target.
func Flash(imagePath string, m *bmap.Map, targetPath string, opts Options) (Result, error) {
	var res Result
	img, err := os.Open(imagePath)
	if err != nil {
		return res, err
	}
	defer img.Close()
	if st, err := img.Stat(); err != nil {
		return res, err
	} else if st.Size() != m.ImageSize {
		return res, fmt.Errorf("image is %d bytes, block map says %d: %w", st.Size(), m.ImageSize, bmap.ErrFormat)
	}
	if !opts.Force {
		if err := checkTarget(targetPath); err != nil {
			return res, err
		}
	}
	tgt, err := os.OpenFile(targetPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return res, err
	}
	defer tgt.Close()
	st, err := tgt.Stat()
	if err != nil {
		return res, err
	}
	if st.Mode().IsRegular() {
		if st.Size() < m.ImageSize {
			if err := tgt.Truncate(m.ImageSize); err != nil {
				return res, err
			}
		}
	} else if size, err := tgt.Seek(0, io.SeekEnd); err != nil {
		return res, err
	} else if size < m.ImageSize {
		return res, fmt.Errorf("%s has %d bytes, image needs %d: %w", targetPath, size, m.ImageSize, ErrTooSmall)
	}
	var total int64
	for _, r := range m.Ranges {
		_, n := m.Bytes(r)
		total += n
	}
	buf := make([]byte, 1<<20)
	for _, r := range m.Ranges {
		off, n := m.Bytes(r)
		h := sha256.New()
		src := io.TeeReader(io.NewSectionReader(img, off, n), h)
		w := io.NewOffsetWriter(tgt, off)
		if _, err := io.CopyBuffer(w, src, buf); err != nil {
			return res, fmt.Errorf("writing blocks %d-%d: %w", r.First, r.Last, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
			return res, fmt.Errorf("image blocks %d-%d do not match the block map: %w", r.First, r.Last, ErrVerify)
		}
		res.Written += n
		if opts.Progress != nil {
			opts.Progress(res.Written, total)
		}
	}
	if err := tgt.Sync(); err != nil {
		return res, err
	}
	if opts.NoVerify {
		return res, nil
	}
	if err := Verify(tgt, m); err != nil {
		return res, err
	}
	res.Verified = true
	return res, nil
}

// Verify reads every mapped range of r and compares it with the map.
func Verify(r io.ReaderAt, m *bmap.Map) error {
	buf := make([]byte, 1<<20)
	for _, rg := range m.Ranges {
		off, n := m.Bytes(rg)
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(r, off, n), buf); err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != rg.SHA256 {
			return fmt.Errorf("blocks %d-%d: %w", rg.First, rg.Last, ErrVerify)
		}
	}
	return nil
}
