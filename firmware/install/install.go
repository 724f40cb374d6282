// Package install streams a verified bundle into the inactive slot group.
//
// The order of an installation is the safety argument:
//
//  1. read the header and verify the signature, chain and compatible board
//     (nothing written anywhere yet);
//  2. pick the target group (the one not booted) and refuse if any target
//     device is the booted or mounted root;
//  3. mark the target bad in the boot environment (one atomic write) and in
//     the slot status record;
//  4. write each image, a verified chunk at a time, then fsync the device;
//  5. check the stream ends after the last image;
//  6. record version and hashes, then arm the target (one atomic write).
//
// A failure or power cut before 6 leaves the target marked bad, so the
// bootloader never picks a half-written slot. Options.Resume continues such
// an installation: the chunks the target already holds are checked against
// the signed chunk hashes and kept, and the source skips to the first
// missing chunk (an HTTP Range request), so nothing is downloaded twice.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/slot"
)

// Error categories of an installation.
var (
	// ErrTooLarge: an image does not fit its slot.
	ErrTooLarge = errors.New("image larger than its slot")
	// ErrMounted: a target slot is mounted; writing under a mounted file
	// system would corrupt both.
	ErrMounted = errors.New("target slot is mounted")
	// ErrDowngrade: the bundle is older than the running firmware and the
	// slots file's downgrade policy is refuse (anti-rollback).
	ErrDowngrade = errors.New("downgrade refused")
)

// Installer installs bundles into the slots of one device.
type Installer struct {
	Slots   *slot.Config
	Scheme  bootenv.Scheme
	Keyring *bundle.Keyring
	Log     *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// SkipIdentical reads each 1 MiB frame of the target before writing
	// it and skips the write when the slot already holds those bytes (as
	// Mender's optimized block writer does): less flash wear when the new
	// image shares data with what the slot held, e.g. a retried install.
	SkipIdentical bool
}

// Progress is reported while images are written.
type Progress struct {
	Class   string `json:"class"`
	Written int64  `json:"written"` // bytes of all images written so far
	Total   int64  `json:"total"`   // bytes of all images
}

// Options of one installation.
type Options struct {
	// Transaction is stored in the slot status record.
	Transaction string
	// OnVerified runs after the manifest is verified and the target chosen,
	// before anything is written; an error aborts the installation.
	OnVerified func(m *bundle.Manifest, target string) error
	// Progress, if set, is called about every 1% and at the end.
	Progress func(Progress)
	// AfterStep, if set, is called after each durable step (the agent's
	// kill tests SIGKILL the process there).
	AfterStep func(Step)
	// Resume continues an interrupted installation of the same bundle: the
	// target's leading chunks that match the manifest's chunk hashes are
	// kept, and the source skips ahead (an HTTP source with a Range
	// request) to the first chunk that is missing.
	Resume bool
	// AllowDowngrade overrides the slots file's downgrade policy for this
	// installation (a technician's explicit choice; never set from a
	// remote campaign).
	AllowDowngrade bool
}

// Step names a durable point of an installation.
type Step string

// Steps, in order.
const (
	StepMarkedBad Step = "marked-bad" // target marked bad, nothing written yet
	StepWritten   Step = "written"    // all images written and fsynced
	StepArmed     Step = "armed"      // target armed for its trial boot
)

func (o Options) step(s Step) {
	if o.AfterStep != nil {
		o.AfterStep(s)
	}
}

// Result describes a completed installation.
type Result struct {
	Target   string           `json:"target"`
	Manifest *bundle.Manifest `json:"manifest"`
	Signer   *bundle.Signer   `json:"signer"`
	// Skipped counts bytes not written because the slot held them already
	// (SkipIdentical).
	Skipped int64 `json:"skipped,omitempty"`
	// Resumed counts image bytes kept from an interrupted installation
	// (Options.Resume).
	Resumed int64 `json:"resumed,omitempty"`
}

// Install reads a bundle from r and installs it into the inactive group.
func (in *Installer) Install(ctx context.Context, r io.Reader, opts Options) (*Result, error) {
	log := in.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	br, err := bundle.Open(r, bundle.VerifyOptions{Keyring: in.Keyring, Compatible: in.Slots.Compatible, Now: now()})
	if err != nil {
		return nil, err
	}
	m := br.Manifest()
	booted, err := in.Slots.Booted()
	if err != nil {
		return nil, err
	}
	if err := in.checkDowngrade(m.Version, booted, opts.AllowDowngrade, log); err != nil {
		return nil, err
	}
	target := bootenv.Other(booted)
	targets := make([]slot.Slot, len(m.Images))
	for i, im := range m.Images {
		s, err := in.Slots.Get(im.Class, target)
		if err != nil {
			return nil, fmt.Errorf("bundle image %q: %w", im.Class, err)
		}
		if err := in.checkTarget(s, booted, im.Size); err != nil {
			return nil, err
		}
		targets[i] = s
	}
	log = log.With("version", m.Version, "target", target)
	if opts.OnVerified != nil {
		if err := opts.OnVerified(m, target); err != nil {
			return nil, err
		}
	}

	// From here on the target may be half written: mark it bad first.
	if err := in.Scheme.MarkBad(target); err != nil {
		return nil, fmt.Errorf("mark slot %s bad: %w", target, err)
	}
	err = in.Slots.UpdateStatus(target, func(s *slot.Status) {
		*s = slot.Status{Status: slot.StatusInstalling, Version: m.Version, Transaction: opts.Transaction}
	})
	if err != nil {
		return nil, fmt.Errorf("slot status: %w", err)
	}
	opts.step(StepMarkedBad)
	log.Info("installing", "images", len(m.Images))

	var total int64
	for _, im := range m.Images {
		total += im.Size
	}
	first, resumed := 0, int64(0)
	if opts.Resume {
		var chunk int
		if first, chunk, resumed, err = resumePoint(m, targets); err != nil {
			return nil, in.fail(target, fmt.Errorf("resume: %w", err))
		}
		if err := br.ResumeAt(first, chunk); err != nil {
			return nil, in.fail(target, fmt.Errorf("resume: %w", err))
		}
		log.Info("resuming the interrupted install", "image", first, "chunk", chunk, "kept", resumed)
	}
	pw := &progressWriter{class: "", total: total, fn: opts.Progress, step: max(total/100, 1<<20), written: resumed}
	var skipped int64
	for i := first; i < len(m.Images); i++ {
		im, ir, err := br.Next()
		if err != nil {
			return nil, in.fail(target, err)
		}
		pw.class = im.Class
		n, err := writeImage(ctx, targets[i].Device, ir, ir.Offset(), pw, in.SkipIdentical)
		skipped += n
		if err != nil {
			return nil, in.fail(target, fmt.Errorf("write %s to %s: %w", im.Class, targets[i].Device, err))
		}
		log.Info("image written", "class", im.Class, "device", targets[i].Device, "bytes", im.Size)
	}
	if _, _, err := br.Next(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("more images than the manifest lists: %w", bundle.ErrFormat)
		}
		return nil, in.fail(target, err)
	}
	pw.report(true)
	opts.step(StepWritten)

	err = in.Slots.UpdateStatus(target, func(s *slot.Status) {
		s.Status = slot.StatusTrial
		s.InstalledAt = now().UTC()
		s.CommittedAt = time.Time{}
		s.BootCount = 0
		s.SHA256, s.Size = map[string]string{}, map[string]int64{}
		for _, im := range m.Images {
			s.SHA256[im.Class], s.Size[im.Class] = im.SHA256, im.Size
		}
	})
	if err != nil {
		return nil, in.fail(target, fmt.Errorf("slot status: %w", err))
	}
	if err := in.Scheme.Arm(target); err != nil {
		return nil, in.fail(target, fmt.Errorf("arm slot %s: %w", target, err))
	}
	opts.step(StepArmed)
	log.Info("installed and armed for a trial boot")
	return &Result{Target: target, Manifest: m, Signer: br.Signer, Skipped: skipped, Resumed: resumed}, nil
}

// fail records the target as bad (it already is in the boot environment)
// and returns err.
func (in *Installer) fail(target string, err error) error {
	if uerr := in.Slots.UpdateStatus(target, func(s *slot.Status) { s.Status = slot.StatusBad }); uerr != nil {
		return errors.Join(err, uerr)
	}
	return err
}

// checkTarget refuses a target that is (or resolves to) the booted slot,
// is mounted, or is too small.
func (in *Installer) checkTarget(s slot.Slot, booted string, size int64) error {
	for _, b := range in.Slots.Group(booted) {
		if slot.SameDevice(s.Device, b.Device) {
			return fmt.Errorf("%s.%s (%s) is the booted %s.%s: %w", s.Class, s.Name, s.Device, b.Class, b.Name, slot.ErrBootedSlot)
		}
	}
	if mp := mountedAt(s.Device); mp == "/" {
		return fmt.Errorf("%s is the mounted root: %w", s.Device, slot.ErrBootedSlot)
	} else if mp != "" {
		return fmt.Errorf("%s is mounted at %s: %w", s.Device, mp, ErrMounted)
	}
	limit := s.Size
	if limit == 0 {
		limit = blockDeviceSize(s.Device)
	}
	if limit > 0 && size > limit {
		return fmt.Errorf("%s.%s: %d bytes into %d: %w", s.Class, s.Name, size, limit, ErrTooLarge)
	}
	return nil
}

// writeImage streams r into device and fsyncs it; it returns the bytes
// skipped as identical.
func writeImage(ctx context.Context, device string, r io.Reader, off int64, pw *progressWriter, skipIdentical bool) (int64, error) {
	flag := os.O_WRONLY
	if skipIdentical {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(device, flag, 0)
	if err != nil {
		return 0, err
	}
	var dst io.Writer = f
	var sw *skipWriter
	if skipIdentical {
		sw = &skipWriter{f: f, off: off, old: make([]byte, 1<<20)}
		dst = sw
	} else if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	// Writes of 1 MiB, up to 3 in flight while the next chunk is verified.
	pipe := newPipeWriter(&ctxWriter{ctx: ctx, w: dst, pw: pw}, 3, 1<<20)
	_, err = io.Copy(pipe, r)
	if cerr := pipe.Close(); err == nil {
		err = cerr
	}
	var skipped int64
	if sw != nil {
		skipped = sw.skipped
	}
	if err != nil {
		f.Close()
		return skipped, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return skipped, err
	}
	return skipped, f.Close()
}

// resumePoint finds the first image and chunk the targets do not hold
// yet, and the image bytes kept before it.
func resumePoint(m *bundle.Manifest, targets []slot.Slot) (image, chunk int, kept int64, err error) {
	for i := range m.Images {
		im := &m.Images[i]
		f, err := os.Open(targets[i].Device)
		if err != nil {
			return 0, 0, 0, err
		}
		k, err := bundle.VerifiedPrefix(f, im)
		f.Close()
		if err != nil {
			return 0, 0, 0, err
		}
		if k < len(im.Chunks) {
			if im.Compression != bundle.CompressionNone {
				k = 0
			}
			return i, k, kept + int64(k)*im.ChunkSize, nil
		}
		kept += im.Size
	}
	return len(m.Images), 0, kept, nil
}

// skipWriter writes sequentially from its offset, skipping frames the file
// already holds.
type skipWriter struct {
	f       *os.File
	off     int64
	old     []byte
	skipped int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	old := s.old[:min(len(p), len(s.old))]
	if len(old) == len(p) {
		if n, _ := s.f.ReadAt(old, s.off); n == len(p) && bytes.Equal(old, p) {
			s.off += int64(len(p))
			s.skipped += int64(len(p))
			return len(p), nil
		}
	}
	n, err := s.f.WriteAt(p, s.off)
	s.off += int64(n)
	return n, err
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
	pw  *progressWriter
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.pw.add(int64(n))
	return n, err
}

type progressWriter struct {
	class        string
	written      int64
	total, step  int64
	lastReported int64
	fn           func(Progress)
}

func (p *progressWriter) add(n int64) {
	p.written += n
	p.report(false)
}

func (p *progressWriter) report(final bool) {
	if p.fn == nil || (!final && p.written-p.lastReported < p.step) {
		return
	}
	p.lastReported = p.written
	p.fn(Progress{Class: p.class, Written: p.written, Total: p.total})
}

// checkDowngrade applies the slots file's downgrade policy before anything
// is written. The running version is the booted slot's recorded version,
// else the slots file's baseVersion (a factory image has no record); with
// neither, there is nothing to compare and the install goes ahead.
func (in *Installer) checkDowngrade(newVersion, booted string, allow bool, log *slog.Logger) error {
	if in.Slots.Downgrade != slot.DowngradeRefuse || allow {
		return nil
	}
	sf, err := in.Slots.LoadStatus()
	if err != nil {
		return fmt.Errorf("slot status: %w", err)
	}
	running := sf.Slots[booted].Version
	if running == "" {
		running = in.Slots.BaseVersion
	}
	if running == "" {
		log.Warn("running firmware version unknown, downgrade check skipped (set baseVersion in the slots file)", "bundle", newVersion)
		return nil
	}
	c, err := compareVersions(newVersion, running)
	if err != nil {
		return fmt.Errorf("%w: cannot order bundle %q against running %q: %w", ErrDowngrade, newVersion, running, err)
	}
	if c < 0 {
		return fmt.Errorf("%w: bundle version %s is older than the running %s (slots file: downgrade refuse)", ErrDowngrade, newVersion, running)
	}
	return nil
}
