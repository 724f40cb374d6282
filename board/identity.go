package board

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNoIdentity: no source gave a usable identity.
var ErrNoIdentity = errors.New("no hardware identity found")

// Identity is the device's hardware identity and where it came from.
type Identity struct {
	ID     string `json:"id"`
	Source string `json:"source"`
}

// Identity sources, in the order they are tried.
const (
	SourceHook       = "hook"
	SourceDTSerial   = "device-tree-serial"
	SourceDMISerial  = "dmi-product-serial"
	SourceDMIUUID    = "dmi-product-uuid"
	SourceMachineID  = "machine-id"
	SourcePrimaryMAC = "primary-mac"
)

// placeholders are values firmware fills in when it has no real one.
var placeholders = map[string]bool{
	"": true, "0": true, "none": true, "default string": true, "to be filled by o.e.m.": true,
	"not specified": true, "system serial number": true, "not applicable": true, "0123456789": true,
	"00000000-0000-0000-0000-000000000000": true, "ffffffff-ffff-ffff-ffff-ffffffffffff": true,
	"03000200-0400-0500-0006-000700080009": true,
}

func usable(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return !placeholders[v] && strings.Trim(v, "0") != ""
}

// Identity returns the first usable identity, in this order: the identity
// hook; the device-tree serial number (/proc/device-tree/serial-number,
// /sys/firmware/devicetree/base/serial-number); the DMI product serial;
// the DMI product UUID; /etc/machine-id; the MAC address of the primary
// interface (the one holding the default route, else the first non-loopback
// interface by name). Placeholder values ("To be filled by O.E.M.", all
// zeros, ...) are skipped.
func (h *Hooks) Identity(ctx context.Context) (Identity, error) {
	if out, ok, err := h.run(ctx, HookIdentity); ok {
		if err != nil {
			return Identity{}, err
		}
		id := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		if id == "" {
			return Identity{}, fmt.Errorf("%s printed nothing: %w", HookIdentity, ErrHook)
		}
		return Identity{ID: id, Source: SourceHook}, nil
	}
	read := func(p string) string {
		b, err := os.ReadFile(h.path(p))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(bytes.TrimRight(b, "\x00\n")))
	}
	for _, c := range []struct{ source, path string }{
		{SourceDTSerial, "/proc/device-tree/serial-number"},
		{SourceDTSerial, "/sys/firmware/devicetree/base/serial-number"},
		{SourceDMISerial, "/sys/class/dmi/id/product_serial"},
		{SourceDMIUUID, "/sys/class/dmi/id/product_uuid"},
		{SourceMachineID, "/etc/machine-id"},
	} {
		if v := read(c.path); usable(v) {
			if c.source == SourceDMIUUID {
				v = strings.ToLower(v)
			}
			return Identity{ID: v, Source: c.source}, nil
		}
	}
	if mac := h.primaryMAC(read); mac != "" {
		return Identity{ID: mac, Source: SourcePrimaryMAC}, nil
	}
	return Identity{}, ErrNoIdentity
}

func (h *Hooks) primaryMAC(read func(string) string) string {
	iface := ""
	// /proc/net/route: Iface Destination Gateway ...; destination 00000000 is the default.
	for _, line := range strings.Split(read("/proc/net/route"), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == "00000000" {
			iface = f[0]
			break
		}
	}
	if iface != "" {
		if mac := read("/sys/class/net/" + iface + "/address"); usableMAC(mac) {
			return mac
		}
	}
	ents, _ := filepath.Glob(h.path("/sys/class/net/*"))
	sort.Strings(ents)
	for _, e := range ents {
		name := filepath.Base(e)
		if name == "lo" {
			continue
		}
		if mac := read("/sys/class/net/" + name + "/address"); usableMAC(mac) {
			return mac
		}
	}
	return ""
}

func usableMAC(m string) bool {
	return len(m) == 17 && m != "00:00:00:00:00:00"
}
