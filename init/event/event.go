// Package event defines the marker lines the image's init prints on the
// console, one per boot milestone, so that tests, the demo and a human
// reading the serial log can follow a boot:
//
//	KANTO-EVENT services-up slot=A uptime=3.21
//
// A line is the prefix, the event name, then key=value pairs (values
// without spaces).
package event

import (
	"fmt"
	"strings"
)

// Prefix starts every marker line.
const Prefix = "KANTO-EVENT "

// Event names, in boot order.
const (
	Stage1       = "stage1"        // initramfs: modules loaded, root found (root=, fstype=)
	Init         = "init"          // the slot's init started (slot=, version=)
	PowerKey     = "power-key"     // a power key is watched; pressing it powers off (device=)
	Mounted      = "mounted"       // a filesystem is mounted (path=)
	Watchdog     = "watchdog"      // the hardware watchdog is armed (device=, timeout= seconds the driver reports, set= whether it took ours)
	NetUp        = "net-up"        // the network is configured (addr=, via=dhcp|static)
	Identity     = "identity"      // provisioned identity found (device=)
	ServiceReady = "service-ready" // one service is ready (name=)
	ServicesUp   = "services-up"   // every service has been ready
	Healthy      = "healthy"       // health checks passed (slot=, trial=)
	Committed    = "committed"     // the trial slot was committed (slot=)
	Unhealthy    = "unhealthy"     // health checks failed (slot=, reason=)
	Shutdown     = "shutdown"      // clean shutdown begins (action=reboot|poweroff)
	Fatal        = "fatal"         // the init cannot continue (err=)
)

// Line formats a marker line (without newline). kv are key, value pairs;
// spaces in values become underscores so the line stays parseable.
func Line(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString(name)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %s=%s", kv[i], strings.ReplaceAll(kv[i+1], " ", "_"))
	}
	return b.String()
}

// Parsed is a marker line taken apart.
type Parsed struct {
	Name string
	KV   map[string]string
}

// Parse finds a marker in a console line (anything may precede the prefix,
// such as kernel timestamps). ok is false when the line has no marker.
func Parse(line string) (p Parsed, ok bool) {
	i := strings.Index(line, Prefix)
	if i < 0 {
		return Parsed{}, false
	}
	f := strings.Fields(line[i+len(Prefix):])
	if len(f) == 0 {
		return Parsed{}, false
	}
	p = Parsed{Name: f[0], KV: map[string]string{}}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		p.KV[k] = v
	}
	return p, true
}
