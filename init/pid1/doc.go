// Package pid1 is the image's init: stage 1 runs from the initramfs (load
// the kernel modules, find and mount the slot's root filesystem, switch to
// it), stage 2 is PID 1 of the slot (mounts, network, supervised services,
// watchdog, health and commit, clean reboot and poweroff, also on a power
// key press: the ACPI button, gpio-keys).
//
// Why two stages: the Debian kernel has virtio and ext4 only as modules, so a
// small initramfs (init + 20 modules, about 6 MB) must load them before the
// slot can be mounted. The slot itself is an ext4 filesystem mounted
// read-only, not a big initramfs: under TCG the kernel would otherwise
// unpack tens of MB of cpio on every boot, while ext4 pages in only what
// runs. The same binary is both stages.
package pid1

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/kantofw/kanto/init/event"
)

// Console writes whole lines to the console from many goroutines.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole wraps w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Write implements io.Writer.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}

// Event prints a marker line with the uptime appended.
func (c *Console) Event(name string, kv ...string) {
	kv = append(kv, "uptime", uptime())
	fmt.Fprintln(c, event.Line(name, kv...))
}

// Prefixed returns a writer that prefixes each line with "[name] ", for a
// service's output.
func (c *Console) Prefixed(name string) io.Writer {
	return &prefixWriter{c: c, prefix: "[" + name + "] "}
}

type prefixWriter struct {
	c      *Console
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		line := p.buf[:i+1]
		p.c.Write(append([]byte(p.prefix), line...))
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 4096 { // a very long line without newline
		p.c.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
	return len(b), nil
}

func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	if v, err := strconv.ParseFloat(f[0], 64); err == nil {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return f[0]
}
