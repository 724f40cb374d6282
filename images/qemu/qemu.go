// Package qemu boots a Kanto disk image in QEMU the way the tests, the demo
// and `make qemu` need it: UEFI (OVMF) and GRUB from the image, TCG
// emulation (never KVM: the CI host's /dev/kvm cannot run a stock guest),
// a virtio disk and NIC with user networking (the guest's 10.0.2.2 is the
// host's 127.0.0.1), an i6300esb watchdog, and the serial console on
// stdout. The console is read line by line, timestamped and searchable, so a
// test waits for markers and can cut the power (Kill) at any point.
package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kantofw/kanto/images/bmap"
	"github.com/kantofw/kanto/init/event"
)

// Errors, checked with errors.Is.
var (
	// ErrExited means QEMU exited while a marker was awaited.
	ErrExited = errors.New("qemu exited")
	// ErrTimeout means the marker did not appear in time.
	ErrTimeout = errors.New("timed out waiting for console output")
	// ErrMissing means QEMU or OVMF is not installed.
	ErrMissing = errors.New("qemu or ovmf missing")
)

// Defaults for Options.
const (
	DefaultBinary = "qemu-system-x86_64"
	DefaultOVMF   = "/usr/share/ovmf/OVMF.fd"
)

// Options configure a VM.
type Options struct {
	// Disk is the raw image booted read-write (copy it first to keep the
	// original, see CopyDisk).
	Disk   string
	Binary string // default qemu-system-x86_64
	OVMF   string // default /usr/share/ovmf/OVMF.fd
	MemMiB int    // default 512
	// NoNet leaves the guest without a NIC.
	NoNet bool
	// HostFwd adds user-net forwards "tcp::HOSTPORT-:GUESTPORT".
	HostFwd []string
	// NoWatchdog leaves out the i6300esb watchdog.
	NoWatchdog bool
	// Console receives a copy of the raw serial output (nil: none).
	Console io.Writer
	// OnLine, if set, is called with every cleaned console line as it
	// arrives (from the reader goroutine; it must not block).
	OnLine func(Line)
	// Interactive connects the terminal to the serial console (stdin and
	// stdout of this process; Ctrl-A X quits) instead of capturing it.
	Interactive bool
	// Kernel, Initrd and Append boot a kernel directly (no firmware, no
	// GRUB; QEMU exits on reboot). Disk is optional then.
	Kernel, Initrd, Append string
	// Extra are further QEMU arguments.
	Extra []string
}

// Line is one console line, without control characters, and when it
// arrived (since Start).
type Line struct {
	At   time.Duration
	Text string
}

// VM is a running QEMU.
type VM struct {
	cmd   *exec.Cmd
	start time.Time

	onLine func(Line)

	mu     sync.Mutex
	lines  []Line
	cursor int
	notify chan struct{} // closed and replaced on each new line
	done   chan struct{} // closed when QEMU has exited
	err    error         // QEMU's exit status, once done
}

// Args returns the QEMU command line for opts.
func Args(o Options) []string {
	if o.OVMF == "" {
		o.OVMF = DefaultOVMF
	}
	if o.MemMiB == 0 {
		o.MemMiB = 512
	}
	a := []string{"-accel", "tcg", "-m", fmt.Sprint(o.MemMiB), "-nographic"}
	if o.Kernel != "" {
		a = append(a, "-no-reboot", "-kernel", o.Kernel, "-append", o.Append)
		if o.Initrd != "" {
			a = append(a, "-initrd", o.Initrd)
		}
	} else {
		a = append(a, "-bios", o.OVMF)
	}
	if o.Disk != "" {
		a = append(a, "-drive", "file="+o.Disk+",format=raw,if=virtio,cache=unsafe")
	}
	if o.NoNet {
		a = append(a, "-nic", "none")
	} else {
		nic := "user,model=virtio-net-pci"
		for _, f := range o.HostFwd {
			nic += ",hostfwd=" + f
		}
		a = append(a, "-nic", nic)
	}
	if !o.NoWatchdog {
		a = append(a, "-device", "i6300esb")
	}
	// Entropy from the host: without it the guest's getrandom(2) can block
	// for a long time under TCG, and Go programs stall in crypto/rand.
	a = append(a, "-device", "virtio-rng-pci")
	return append(a, o.Extra...)
}

// Start boots the VM.
func Start(ctx context.Context, o Options) (*VM, error) {
	bin := o.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("%s: %w", bin, ErrMissing)
	}
	ovmf := o.OVMF
	if ovmf == "" {
		ovmf = DefaultOVMF
	}
	if _, err := os.Stat(ovmf); err != nil && o.Kernel == "" {
		return nil, fmt.Errorf("%s: %w", ovmf, ErrMissing)
	}
	if o.Disk != "" {
		if _, err := os.Stat(o.Disk); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, bin, Args(o)...)
	// Own process group: Kill takes QEMU down with nothing left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !o.Interactive}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	v := &VM{cmd: cmd, notify: make(chan struct{}), done: make(chan struct{})}
	if o.Interactive {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = nil
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		v.start = time.Now()
		go func() { v.finish(cmd.Wait()) }()
		return v, nil
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	v.start = time.Now()
	var readerDone sync.WaitGroup
	readerDone.Add(1)
	// Owned by the VM; ends when QEMU's output pipe closes.
	v.onLine = o.OnLine
	go func() { defer readerDone.Done(); v.read(pr, o.Console) }()
	// Owned by the VM; ends when QEMU exits.
	go func() {
		err := cmd.Wait()
		pw.Close()
		readerDone.Wait()
		v.finish(err)
	}()
	return v, nil
}

func (v *VM) finish(err error) {
	v.mu.Lock()
	v.err = err
	v.mu.Unlock()
	close(v.done)
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>cM78]`)

// Clean removes escape sequences and control characters from a line.
func Clean(s string) string {
	s = ansi.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func (v *VM) read(r io.Reader, raw io.Writer) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		s, err := br.ReadString('\n')
		if raw != nil && s != "" {
			_, _ = io.WriteString(raw, s)
		}
		// OVMF redraws with bare CRs; split on them too.
		for _, part := range strings.Split(s, "\r") {
			if t := strings.TrimSpace(Clean(part)); t != "" {
				v.add(t)
			}
		}
		if err != nil {
			return
		}
	}
}

func (v *VM) add(text string) {
	l := Line{At: time.Since(v.start), Text: text}
	v.mu.Lock()
	v.lines = append(v.lines, l)
	close(v.notify)
	v.notify = make(chan struct{})
	v.mu.Unlock()
	if v.onLine != nil {
		v.onLine(l)
	}
}

// Since returns how long the VM has been running.
func (v *VM) Since() time.Duration { return time.Since(v.start) }

// Lines returns every console line so far.
func (v *VM) Lines() []Line {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Line(nil), v.lines...)
}

// Log returns the console so far as text with timestamps, for test failure
// messages.
func (v *VM) Log() string {
	var b strings.Builder
	for _, l := range v.Lines() {
		fmt.Fprintf(&b, "%7.2f %s\n", l.At.Seconds(), l.Text)
	}
	return b.String()
}

// WaitFor waits until a console line after the previous match matches re,
// and returns it. Lines are consumed in order, so successive calls follow
// the boot (and reboots) forward.
func (v *VM) WaitFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (Line, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		v.mu.Lock()
		for i := v.cursor; i < len(v.lines); i++ {
			if re.MatchString(v.lines[i].Text) {
				v.cursor = i + 1
				l := v.lines[i]
				v.mu.Unlock()
				return l, nil
			}
		}
		v.cursor = len(v.lines)
		ch := v.notify
		v.mu.Unlock()
		select {
		case <-ch:
		case <-v.done:
			// Drain lines that arrived with the exit.
			v.mu.Lock()
			more := v.cursor < len(v.lines)
			v.mu.Unlock()
			if !more {
				return Line{}, fmt.Errorf("waiting for %q: %w (%v)", re, ErrExited, v.err)
			}
		case <-t.C:
			return Line{}, fmt.Errorf("waiting %v for %q: %w", timeout, re, ErrTimeout)
		case <-ctx.Done():
			return Line{}, ctx.Err()
		}
	}
}

// WaitEvent waits for the init's marker line named name (see init/event)
// whose key=value pairs include kv.
func (v *VM) WaitEvent(ctx context.Context, timeout time.Duration, name string, kv ...string) (event.Parsed, Line, error) {
	re := regexp.MustCompile(regexp.QuoteMeta(event.Prefix + name))
	deadline := time.Now().Add(timeout)
	for {
		l, err := v.WaitFor(ctx, re, time.Until(deadline))
		if err != nil {
			return event.Parsed{}, l, err
		}
		p, ok := event.Parse(l.Text)
		if !ok || p.Name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(kv); i += 2 {
			if p.KV[kv[i]] != kv[i+1] {
				match = false
			}
		}
		if match {
			return p, l, nil
		}
	}
}

// Kill cuts the power: QEMU is killed at once, nothing is flushed.
func (v *VM) Kill() {
	if v.cmd.Process != nil {
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		_ = v.cmd.Process.Kill()
	}
	<-v.done
}

// Wait waits for QEMU to exit (the guest powered off) and returns its exit
// status.
func (v *VM) Wait(timeout time.Duration) error {
	select {
	case <-v.done:
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.err
	case <-time.After(timeout):
		return fmt.Errorf("waiting %v for qemu to exit: %w", timeout, ErrTimeout)
	}
}

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// CopyDisk makes a sparse copy of an image for one VM to write to: only
// the data extents are copied.
func CopyDisk(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(st.Size()); err != nil {
		return err
	}
	exts, err := bmap.Extents(in, st.Size())
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, e := range exts {
		w := io.NewOffsetWriter(out, e[0])
		if _, err := io.CopyBuffer(w, io.NewSectionReader(in, e[0], e[1]-e[0]), buf); err != nil {
			return err
		}
	}
	return out.Close()
}
